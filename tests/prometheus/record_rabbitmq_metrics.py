"""Record RabbitMQ's metric families (name, type, help) for tests/prometheus/test_golden.py.

Run against a RabbitMQ 3.10 with the rabbitmq_prometheus plugin:

    python tests/prometheus/record_rabbitmq_metrics.py [--amqp amqp://guest:guest@127.0.0.1:5673/%2F] \
        [--metrics http://127.0.0.1:15693]

It makes a queue, an exchange, a connection with a publishing and a consuming channel (so every per-object
family has series), scrapes ``/metrics`` and ``/metrics/per-object``, removes what it made, and writes
golden/rabbitmq-metrics.txt: a header saying where it came from, then one line per family,
``endpoint<TAB>name<TAB>type<TAB>help``, names as prometheus_client's parser gives them (counters without
``_total``).  Only names, types and help texts are kept: values differ from run to run.
"""
import argparse
import time
import urllib.request
from pathlib import Path

import pika
from prometheus_client.parser import text_string_to_metric_families

OUT = Path(__file__).parent / "golden" / "rabbitmq-metrics.txt"
PREFIX = "prom-golden-"


def families(url: str):
    with urllib.request.urlopen(url, timeout=30) as r:
        text = r.read().decode()
    return [(f.name, f.type, f.documentation) for f in text_string_to_metric_families(text)], text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5673/%2F")
    ap.add_argument("--metrics", default="http://127.0.0.1:15693")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    c = pika.BlockingConnection(pika.URLParameters(args.amqp))
    try:
        pub = c.channel()
        pub.confirm_delivery()
        pub.queue_declare(PREFIX + "q")
        pub.exchange_declare(PREFIX + "x", "fanout")
        pub.queue_bind(PREFIX + "q", PREFIX + "x")
        for _ in range(3):
            pub.basic_publish(PREFIX + "x", "", b"hello")
        cons = c.channel()
        cons.basic_qos(prefetch_count=5)
        cons.basic_consume(PREFIX + "q", lambda *a: None)
        c.process_data_events(1)
        time.sleep(6)  # RabbitMQ's statistics interval (5 s): per-object rows appear once emitted
        rows = []
        version = "?"
        for endpoint in ("/metrics", "/metrics/per-object"):
            fams, text = families(args.metrics + endpoint)
            for line in text.splitlines():
                if line.startswith("rabbitmq_build_info{"):
                    version = line.split('rabbitmq_version="', 1)[1].split('"', 1)[0]
            rows += [f"{endpoint}\t{n}\t{t}\t{h}" for n, t, h in fams]
        pub.queue_delete(PREFIX + "q")
        pub.exchange_delete(PREFIX + "x")
    finally:
        c.close()
    header = (f"# RabbitMQ {version}'s metric families (rabbitmq_prometheus plugin), recorded by "
              f"tests/prometheus/record_rabbitmq_metrics.py\n# from {args.metrics}/metrics and /metrics/per-object "
              "with a queue, an exchange, a connection and two channels present.\n"
              "# endpoint<TAB>name (counters without _total, as prometheus_client parses them)<TAB>type<TAB>help\n")
    Path(args.out).write_text(header + "\n".join(rows) + "\n")
    print(f"wrote {len(rows)} families to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Run the Eclipse Paho MQTT interoperability suite against an embedded WarrenMQ (docs/mqtt.md).

Usage:
    git clone https://github.com/eclipse/paho.mqtt.testing /tmp/paho.mqtt.testing
    PYTHONPATH=src python scripts/paho_interop.py /tmp/paho.mqtt.testing [client_test client_test5]

The suite is not in the repository (nor on PyPI, so CI cannot fetch it): this script takes a checkout.
Its scripts parse their own -h/-p flags with getopt and then call unittest.main(), whose parser rejects
them, so each runs here in a child process that imports the module, sets the globals its __main__
block would (host, port, topics) and runs unittest on it.  The broker is configured as the suite's
own test broker is: subscriptions to ``test/nosubscribe`` refused (a topic permission of the guest
user) and a server keep alive of 60 s.
"""
import os
import subprocess
import sys

from warrenmq.testing import EmbeddedBroker

CHILD = r"""
import importlib, logging, os, sys, unittest
suite, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, os.getcwd())
mod = importlib.import_module(suite)
mod.host, mod.port = host, port
mod.topic_prefix = suite + "/"
mod.topics = ("TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA")
mod.wildtopics = ("TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#")
mod.nosubscribe_topics = ("test/nosubscribe",)
logging.getLogger().setLevel(logging.ERROR)
unittest.main(module=mod, argv=[suite] + sys.argv[4:])
"""


def main(argv) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 2
    checkout = os.path.join(argv[0], "interoperability")
    suites = argv[1:] or ["client_test", "client_test5"]
    failed = 0
    with EmbeddedBroker(mqtt=True, mqtt_server_keepalive=60) as b:
        b.call(lambda: b.broker.set_topic_permissions("guest", "/", "amq.topic", ".*", r"^(?!test\.nosubscribe$)"))
        for suite in suites:
            print(f"== {suite} against 127.0.0.1:{b.mqtt_port}", flush=True)
            r = subprocess.run([sys.executable, "-c", CHILD, suite, "127.0.0.1", str(b.mqtt_port)], cwd=checkout)
            failed += r.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

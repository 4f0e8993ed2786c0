"""Headers routing: subscribers pick messages by their headers, not their routing key.

    python examples/headers_routing.py [URL]

URL defaults to $AMQP_URL, then amqp://guest:guest@localhost:5672/%2F.

A headers exchange ignores the routing key and compares each message's
``headers`` property with the arguments of each binding: with "x-match": "all"
every listed header must be present with that value; with "x-match": "any" one
is enough ("all" is the default).
"""
import os
import sys

import pika

from which_broker import announce  # prints "connected to <broker> at <host>:<port>", once

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
EXCHANGE = "reports"

# subscriber -> its binding arguments
SUBSCRIBERS = {
    "pdf-reports": {"x-match": "all", "format": "pdf", "type": "report"},  # both must match
    "pdf-or-logs": {"x-match": "any", "format": "pdf", "type": "log"},     # either is enough
}
# message name -> its headers
MESSAGES = {
    "monthly report (pdf)": {"format": "pdf", "type": "report"},
    "weekly report (zip)": {"format": "zip", "type": "report"},
    "server log (pdf)": {"format": "pdf", "type": "log"},
    "access log (text)": {"format": "text", "type": "log"},
    "photo (jpeg)": {"format": "jpeg"},
}


def main():
    url = next((a for a in sys.argv[1:] if "://" in a), os.environ.get("AMQP_URL", DEFAULT_URL))
    conn = pika.BlockingConnection(pika.URLParameters(url))
    announce(conn)
    ch = conn.channel()
    ch.exchange_declare(EXCHANGE, exchange_type="headers")

    queues = {}
    for name, arguments in SUBSCRIBERS.items():
        queues[name] = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(queues[name], EXCHANGE, arguments=arguments)  # no routing key: the headers decide

    ch.confirm_delivery()  # once basic_publish returns, the message is in every matching queue
    for text, headers in MESSAGES.items():
        ch.basic_publish(EXCHANGE, routing_key="", body=text.encode(),
                         properties=pika.BasicProperties(headers=headers))

    for name, queue in queues.items():
        got = []
        while True:
            method, _props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                break
            got.append(body.decode())
        print(f"{name}: {', '.join(got)}", flush=True)
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

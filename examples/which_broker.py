"""Which broker did we reach?  Every example prints it first, e.g.

    connected to WarrenMQ 0.1.0 on Python 3.11.7 at localhost:5672
    connected to RabbitMQ 3.10.8 (Erlang/OTP 25.2.3) at localhost:5672

WarrenMQ and RabbitMQ both listen on port 5672 by default, and WarrenMQ reports
itself as the RabbitMQ version it is compatible with (``product`` "RabbitMQ",
``version`` "3.10.8"), because clients switch behaviour on those.  What tells
them apart is the ``platform`` server property that every broker sends in
``connection.start``: "WarrenMQ <version> on Python <x.y.z>" for WarrenMQ,
"Erlang/OTP <release>" for RabbitMQ.

Each client library keeps the server properties somewhere else:

* pika: ``connection._impl.server_properties`` for a BlockingConnection (its
  asynchronous adapters have ``server_properties`` themselves);
* aio-pika: ``connection.transport.connection.server_properties`` (the
  underlying aiormq connection);
* kombu: ``connection.connection.server_properties`` (the py-amqp connection).
"""
import threading


def describe(server_properties, host, port):
    """The sentence for a broker's ``connection.start`` server properties."""
    props = {k: v.decode() if isinstance(v, bytes) else v for k, v in server_properties.items()}
    platform = props.get("platform") or ""
    if platform.startswith("WarrenMQ "):
        name = platform  # "WarrenMQ 0.1.0 on Python 3.11.7"
    else:
        name = " ".join(str(props[k]) for k in ("product", "version") if props.get(k)) or "an unnamed broker"
        if platform:
            name += f" ({platform})"  # RabbitMQ: "Erlang/OTP 25.2.3"
    return f"connected to {name} at {host}:{port}"


def connected_to(connection):
    """``describe()`` for an open pika, aio-pika or kombu connection."""
    impl = getattr(connection, "_impl", None)
    if impl is not None and hasattr(impl, "server_properties"):  # pika.BlockingConnection
        return describe(impl.server_properties, impl.params.host, impl.params.port)
    transport = getattr(connection, "transport", None)
    if transport is not None and hasattr(transport, "connection"):  # aio-pika
        url = connection.url  # a yarl.URL, whose port is None unless the URL names one
        return describe(transport.connection.server_properties, url.host,
                        url.port or (5671 if url.scheme == "amqps" else 5672))
    if hasattr(connection, "default_channel"):  # kombu
        return describe(connection.connection.server_properties, connection.hostname, connection.port)
    raise TypeError(f"not a pika, aio-pika or kombu connection: {connection!r}")


_announced = False
_lock = threading.Lock()


def announce(connection):
    """Print ``connected_to(connection)`` once per process (a demo opens several connections).

    Every thread waits here until the line is out, so it comes before anything else they print.
    """
    global _announced
    with _lock:
        if not _announced:
            print(connected_to(connection), flush=True)
            _announced = True

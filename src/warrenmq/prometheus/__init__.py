"""RabbitMQ 3.10's Prometheus plugin for WarrenMQ: metrics on port 15692, read at scrape time.

Theory of operation: :class:`.server.PrometheusServer` is a second aiohttp
listener on the broker's event loop (wired by :class:`~warrenmq.app.BrokerApp`
like the management listener, ``prometheus_enabled``/``prometheus_port``).
Each ``GET /metrics`` (aggregated), ``/metrics/per-object`` (one series per
queue, channel and connection) or ``/metrics/detailed?family=...`` builds a
:class:`.collector.Collector` snapshot: it walks the domain (vhosts, queues,
sessions, channels) and reads the plain integer counters the domain keeps
anyway (:mod:`warrenmq.broker.stats`: message counts per channel and queue,
the node's churn counts, octets per connection), then prometheus_client's
text exposition (``generate_latest``) renders it, gzipped when the scraper
accepts gzip.  Nothing is computed or stored between scrapes, and the message
path is not touched: a scrape's cost is proportional to the number of objects
and is paid on the loop, between AMQP events, like a management API listing.

Metric names, types, help texts and labels are RabbitMQ 3.10.8's
(:data:`.collector.METRICS`, checked against a recording of RabbitMQ in
tests/prometheus); docs/prometheus.md lists what is left out (Erlang VM
metrics, and the few whose counts WarrenMQ does not keep) and why.
"""

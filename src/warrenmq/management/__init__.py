"""The management HTTP API, shaped like RabbitMQ 3.x's management plugin (port 15672).

Theory of operation: :class:`~.server.ManagementServer` is an aiohttp web
application served on the broker's own event loop, in the broker's process: a
handler runs between two AMQP events and reads the domain objects directly
(``broker.vhosts``, ``vhost.queues``/``exchanges``, the exchanges' bindings,
``broker.sessions``), with no copy, no lock and no statistics collector.  What
it changes, it changes through the domain's API (``VHost.declare_queue``,
``delete_queue``, ``declare_exchange``, ...), the one code path AMQP uses, so
a queue declared over HTTP is the queue AMQP would have declared, with the same
validation and the same RabbitMQ texts.

The package:

- :mod:`.server`: the listener.  :class:`~.server.ManagementServer` binds its
  socket when :class:`~warrenmq.app.BrokerApp` binds the AMQP listeners (before
  storage is opened, so a taken port fails first) and serves once the broker
  has recovered.
- :mod:`.auth`: HTTP Basic authentication against the broker's users and the
  tags that decide what a user may see and do (RabbitMQ's
  ``rabbit_mgmt_util:is_authorized*``).
- :mod:`.listing`: the list helper every listing shares (``page``,
  ``page_size``, ``name``/``use_regex``, ``sort``/``sort_reverse``,
  ``columns``), RabbitMQ's ``filter_and_paginate``.
- :mod:`.views`: domain objects as RabbitMQ's JSON.
- :mod:`.routes`: the core endpoints and the request context (:class:`.routes.Ctx`).
- :mod:`.dispatch`: every area's routes in one table (RabbitMQ's ``rabbit_mgmt_dispatcher``).

aiohttp is imported only here: the broker and the embedded test broker work
without it as long as management is not asked for.
"""

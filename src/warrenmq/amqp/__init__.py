"""The AMQP 0-9-1 adapter: protocol events (from :mod:`warrenmq.protocol`) in, domain calls out.

:mod:`.session` holds one :class:`~.session.Session` per connection (the connection and channel
classes' methods), :mod:`.methods` the handlers of the exchange, queue, basic, confirm and tx
classes, :mod:`.channel` the channel's encoding of what the domain hands it (deliveries, returns,
confirms).  Nothing here does I/O: the transport feeds the session and writes what it produced.
"""

"""MQTT 3.1, 3.1.1 and 5.0: the sans-I/O codec (codec.py) and connection state machine
(connection.py), and the adapter that maps MQTT onto the domain (session.py), as RabbitMQ's MQTT
plugin maps it (docs/mqtt.md).  The asyncio side is transport/mqtt.py."""

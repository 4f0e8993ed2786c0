"""STOMP 1.0-1.2 on the domain: a sans-I/O codec (codec.py) and the session state machine (session.py).

The asyncio adapter is transport/stomp.py.  docs/stomp.md has the mapping onto exchanges and queues.
"""

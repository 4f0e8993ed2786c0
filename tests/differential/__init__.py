"""Differential tests: the same client scenarios against WarrenMQ and a reference RabbitMQ."""

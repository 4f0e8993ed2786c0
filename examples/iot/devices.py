"""Simulated devices: each an MQTT client (paho-mqtt) publishing telemetry to ``devices/<id>/telemetry``.

A device logs in as ``iot-device`` (``vhost:user`` when the vhost is not the
default one, as RabbitMQ's MQTT plugin reads it), with its id as the MQTT client
id, and publishes a JSON reading at QoS 1: the broker acknowledges (PUBACK)
once the message is routed, here to the workers' queue and to any dashboard
subscribed to the device.  The broker publishes it to ``amq.topic`` with the
routing key ``devices.<id>.telemetry``.
"""
from __future__ import annotations

import json
import random
import threading
import uuid
from datetime import datetime, timezone

import paho.mqtt.client as mqtt

from setup_broker import USERS

#: a device's kind (its id's prefix) -> typical temperature (°C) and humidity (%)
CLIMATE = {"greenhouse": (24.0, 70.0), "freezer": (-18.0, 40.0)}


def topic(device: str) -> str:
    return f"devices/{device}/telemetry"


class Device:
    """One device's MQTT connection; ``publish()`` sends a reading and waits for its PUBACK."""

    def __init__(self, device: str, host: str, port: int, vhost: str = "/", prefix: str = ""):
        self.id = device
        self.address = f"{host}:{port}"
        self.seq = 0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv311)
        user, (password, _) = prefix + "iot-device", USERS["iot-device"]
        self.client.username_pw_set(user if vhost == "/" else f"{vhost}:{user}", password)
        connected = threading.Event()
        self.refused = None

        def on_connect(client, userdata, flags, reason_code, properties):
            if reason_code.is_failure:
                self.refused = str(reason_code)
            connected.set()

        self.client.on_connect = on_connect
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not connected.wait(10) or self.refused:
            self.client.loop_stop()
            raise ConnectionError(f"{device}: MQTT login refused: {self.refused or 'no CONNACK'}")

    def reading(self) -> dict:
        self.seq += 1
        temperature, humidity = CLIMATE.get(self.id.split("-")[0], (20.0, 50.0))
        return {"id": uuid.uuid4().hex[:12], "device": self.id, "seq": self.seq,
                "temperature": round(random.gauss(temperature, 1.5), 1),
                "humidity": round(min(100.0, max(0.0, random.gauss(humidity, 5))), 1),
                "at": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}

    def publish(self) -> dict:
        reading = self.reading()
        info = self.client.publish(topic(self.id), json.dumps(reading), qos=1)
        info.wait_for_publish(10)  # QoS 1: returns once the broker's PUBACK came back
        return reading

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect(devices: list[str], host: str, port: int, vhost: str, prefix: str) -> list[Device]:
    """Every device's connection (ConnectionError if the broker cannot be reached or refuses one)."""
    connected = []
    try:
        for d in devices:
            connected.append(Device(d, host, port, vhost, prefix))
    except OSError as e:
        for d in connected:
            d.close()
        raise ConnectionError(f"MQTT at {host}:{port}: {e}") from None
    return connected


def run_devices(connected: list[Device], interval: float, stop: threading.Event, say=print) -> None:
    """Every device publishes a reading each ``interval`` seconds (staggered) until ``stop`` is set."""
    say(f"devices: {', '.join(d.id for d in connected)} connected to MQTT at {connected[0].address}, "
        f"a reading every {interval:g} s each")
    try:
        i = 0
        while not stop.wait(interval / len(connected)):
            device = connected[i % len(connected)]
            r = device.publish()
            say(f"{device.id}: published #{r['seq']} {r['temperature']} °C")
            i += 1
    finally:
        for d in connected:
            d.close()

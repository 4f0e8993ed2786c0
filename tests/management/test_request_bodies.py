"""Request bodies with values an AMQP broker cannot hold: integers beyond 64 bits in arguments, headers
and properties, argument names beyond 255 bytes.  RabbitMQ 3.10 keeps them as Erlang terms; WarrenMQ's
arguments and messages are AMQP tables and frames (its store and every AMQP client see them so), so it
answers 400 before anything is made, and leaves nothing behind: not in memory, not in the store, not
after a restart.  (What RabbitMQ answers with a 400 of its own is compared in
tests/differential/test_management_api.py::test_odd_json_types_in_request_bodies.)"""
import pytest

from warrenmq.testing import EmbeddedBroker

from .conftest import Api

BIG = 2 ** 64
NOT_A_TABLE = f"{BIG} does not fit in an AMQP field table (64-bit integers at most)"


@pytest.fixture(scope="module")
def durable_broker(tmp_path_factory):
    d = tmp_path_factory.mktemp("bodies")
    with EmbeddedBroker(management=True, data_dir=str(d)) as b:
        yield b, str(d)


def bad(reason) -> dict:
    return {"error": "bad_request", "reason": reason}


@pytest.mark.parametrize("arguments, reason", [
    ({"x-big": BIG}, NOT_A_TABLE),
    ({"x-max-length": BIG}, NOT_A_TABLE),
    ({"x-big": [1, BIG]}, NOT_A_TABLE),
    ({"x-big": {"nested": {"deeper": BIG}}}, NOT_A_TABLE),
    ({"x-small": -2 ** 63 - 1}, f"{-2 ** 63 - 1} does not fit in an AMQP field table (64-bit integers at most)"),
    ({"x" * 256: 1}, "argument name longer than 255 bytes: " + "x" * 40 + "..."),
])
def test_arguments_no_amqp_table_can_hold_are_refused_and_nothing_is_left(durable_broker, arguments, reason):
    b, _ = durable_broker
    api = Api(b.management_url)
    assert api.put("/api/queues/%2F/big-q", {"durable": True, "arguments": arguments})[::2] == (400, bad(reason))
    assert api.get("/api/queues/%2F/big-q")[0] == 404
    assert not b.call(lambda: "big-q" in b.broker.vhosts["/"].queues)
    assert api.put("/api/exchanges/%2F/big-x", {"type": "direct", "durable": True,
                                                "arguments": arguments})[::2] == (400, bad(reason))
    assert api.get("/api/exchanges/%2F/big-x")[0] == 404
    assert api.put("/api/queues/%2F/bind-q", {"durable": True})[0] in (201, 204)
    assert api.request("POST", "/api/bindings/%2F/e/amq.direct/q/bind-q",
                       {"routing_key": "k", "arguments": arguments})[::2] == (400, bad(reason))
    assert api.get("/api/bindings/%2F/e/amq.direct/q/bind-q")[2] == []


def test_the_largest_integers_a_table_holds_are_accepted_and_survive_a_restart(tmp_path):
    arguments = {"x-max": 2 ** 64 - 1, "x-min": -2 ** 63, "x-list": [2 ** 63, -1], "x-" + "n" * 253: 1}
    with EmbeddedBroker(management=True, data_dir=str(tmp_path)) as b:
        api = Api(b.management_url)
        assert api.put("/api/queues/%2F/edge-q", {"durable": True, "arguments": arguments})[0] == 201
        assert api.put("/api/queues/%2F/big-q", {"durable": True, "arguments": {"x-big": BIG}})[0] == 400
    with EmbeddedBroker(management=True, data_dir=str(tmp_path)) as b:
        api = Api(b.management_url)
        assert api.get("/api/queues/%2F/edge-q")[2]["arguments"] == arguments
        assert api.get("/api/queues/%2F/big-q")[0] == 404


@pytest.mark.parametrize("properties, reason", [
    ({"priority": BIG}, f"priority {BIG} does not fit in its AMQP property (0 to 255)"),
    ({"priority": 256}, "priority 256 does not fit in its AMQP property (0 to 255)"),
    ({"priority": -1}, "priority -1 does not fit in its AMQP property (0 to 255)"),
    ({"timestamp": BIG}, f"timestamp {BIG} does not fit in its AMQP property (0 to {BIG - 1})"),
    ({"timestamp": -1}, f"timestamp -1 does not fit in its AMQP property (0 to {BIG - 1})"),
    ({"delivery_mode": BIG}, f"406 PRECONDITION_FAILED - invalid message: {{delivery_mode_unknown,{BIG}}}"),
    ({"headers": {"a": BIG}}, "headers: " + NOT_A_TABLE),
    ({"headers": {"a": [{"b": BIG}]}}, "headers: " + NOT_A_TABLE),
])
def test_publish_properties_no_content_header_can_carry_are_refused(durable_broker, properties, reason):
    b, _ = durable_broker
    api = Api(b.management_url)
    assert api.put("/api/queues/%2F/pub-q", {})[0] in (201, 204)
    status, _, body = api.request("POST", "/api/exchanges/%2F/amq.default/publish",
                                  {"routing_key": "pub-q", "properties": properties, "payload": "x",
                                   "payload_encoding": "string"})
    assert (status, body) == (400, bad(reason))
    assert api.get("/api/queues/%2F/pub-q")[2]["messages"] == 0


def test_publish_properties_at_their_limits_go_through(durable_broker):
    b, _ = durable_broker
    api = Api(b.management_url)
    assert api.put("/api/queues/%2F/edge-pub", {})[0] in (201, 204)
    props = {"priority": 255, "timestamp": BIG - 1, "delivery_mode": 2, "headers": {"a": BIG - 1, "b": -2 ** 63}}
    assert api.request("POST", "/api/exchanges/%2F/amq.default/publish",
                       {"routing_key": "edge-pub", "properties": props, "payload": "x",
                        "payload_encoding": "string"})[::2] == (200, {"routed": True})
    got = api.request("POST", "/api/queues/%2F/edge-pub/get",
                      {"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"})[2]
    assert got[0]["properties"] == props

"""Channels and consumers over the management API, with pika on the AMQP side (shapes as RabbitMQ 3.10.8's,
probed on a reference with the management plugin)."""
import pika
import pytest

from .conftest import Api, q as seg
from .test_stats import DELIVER_KEYS, get, keys_with_details, sapi, sbroker, wait_for  # noqa: F401 (fixtures)

CHANNEL_KEYS = {"acks_uncommitted", "confirm", "connection_details", "consumer_count", "global_prefetch_count",
                "messages_unacknowledged", "messages_uncommitted", "messages_unconfirmed", "name", "node", "number",
                "pending_raft_commands", "prefetch_count", "state", "transactional", "user",
                "user_who_performed_action", "vhost"}
CONSUMER_KEYS = {"ack_required", "active", "activity_status", "arguments", "channel_details", "consumer_tag",
                 "exclusive", "prefetch_count", "queue"}


def _named(sbroker, name):
    params = pika.URLParameters(sbroker.url)
    params.client_properties = {"connection_name": name}
    return pika.BlockingConnection(params)


def test_channels_connection_channels_vhost_channels_and_consumers(sapi, sbroker):
    c = _named(sbroker, "st-chan-conn")
    try:
        pub = c.channel()
        pub.confirm_delivery()
        pub.queue_declare("st-chq")
        for _ in range(4):
            pub.basic_publish("", "st-chq", b"m")
        sub = c.channel()
        sub.basic_qos(prefetch_count=7)
        got = []
        sub.basic_consume("st-chq", lambda ch, m, p, b: got.append(m), consumer_tag="st-ctag")
        wait_for(lambda: (c.process_data_events(0.05), len(got) == 4)[1])
        sub.basic_ack(got[0].delivery_tag)
        c.process_data_events(0.1)

        conn_json = [x for x in get(sapi, "/api/connections") if x.get("user_provided_name") == "st-chan-conn"]
        assert len(conn_json) == 1
        cname = conn_json[0]["name"]
        assert conn_json[0]["connected_at"] > 0 and conn_json[0]["channels"] == 2

        listed = get(sapi, f"/api/connections/{seg(cname)}/channels")
        assert [ch["name"] for ch in listed] == [f"{cname} (1)", f"{cname} (2)"]
        p_json, s_json = listed
        # idle_since: present once a channel's counts stood still for a sampling interval (test_idle_since)
        assert CHANNEL_KEYS | {"message_stats"} == set(p_json) - {"idle_since"} == set(s_json) - {"idle_since"}
        assert p_json["connection_details"]["name"] == cname
        assert (p_json["confirm"], p_json["number"], p_json["user"], p_json["vhost"]) == (True, 1, "guest", "/")
        assert set(p_json["message_stats"]) == keys_with_details({"publish", "confirm", "return_unroutable",
                                                                   "drop_unroutable"})
        assert (p_json["message_stats"]["publish"], p_json["message_stats"]["confirm"]) == (4, 4)
        assert p_json["messages_unconfirmed"] == 0
        assert (s_json["prefetch_count"], s_json["consumer_count"], s_json["messages_unacknowledged"]) == (7, 1, 3)
        assert set(s_json["message_stats"]) == keys_with_details(DELIVER_KEYS)
        assert (s_json["message_stats"]["deliver"], s_json["message_stats"]["ack"]) == (4, 1)

        one = get(sapi, "/api/channels/" + seg(f"{cname} (2)"))
        assert set(one) - {"idle_since"} == CHANNEL_KEYS | {"message_stats", "consumer_details", "deliveries",
                                                            "publishes"}
        assert [d["consumer_tag"] for d in one["consumer_details"]] == ["st-ctag"]
        assert sapi.get("/api/channels/" + seg(f"{cname} (9)"))[0] == 404

        everywhere = [ch["name"] for ch in get(sapi, "/api/channels")]
        assert f"{cname} (1)" in everywhere and f"{cname} (2)" in everywhere
        in_vhost = [ch["name"] for ch in get(sapi, "/api/vhosts/%2F/channels")]
        assert f"{cname} (2)" in in_vhost

        for path in ("/api/consumers", "/api/consumers/%2F"):
            cons = [x for x in get(sapi, path) if x["consumer_tag"] == "st-ctag"]
            assert len(cons) == 1, path
            x = cons[0]
            assert set(x) == CONSUMER_KEYS
            assert (x["ack_required"], x["active"], x["activity_status"], x["prefetch_count"]) == (True, True, "up", 7)
            assert x["queue"] == {"name": "st-chq", "vhost": "/"}
            assert x["channel_details"] == {"connection_name": cname, "name": f"{cname} (2)",
                                            "node": x["channel_details"]["node"], "number": 2,
                                            "peer_host": conn_json[0]["peer_host"],
                                            "peer_port": conn_json[0]["peer_port"], "user": "guest"}
        queue = get(sapi, "/api/queues/%2F/st-chq")
        assert [set(d) for d in queue["consumer_details"]] == [CONSUMER_KEYS]
        # a paged listing goes through the shared list helper
        page = get(sapi, "/api/channels?page=1&page_size=1")
        assert page["item_count"] == 1 and page["total_count"] >= 2
        pub.queue_delete("st-chq")
    finally:
        c.close()
    assert not [x for x in get(sapi, "/api/consumers") if x["consumer_tag"] == "st-ctag"]


def test_a_vhost_the_user_cannot_see_is_refused_and_unknown_is_404(sapi):
    assert sapi.get("/api/vhosts/nope/channels")[0] == 404
    assert sapi.get("/api/consumers/nope")[0] == 404
    assert sapi.get("/api/connections/nope/channels")[0] == 404


def test_a_management_user_sees_only_its_own_channels(sapi, sbroker):
    sbroker.call(lambda: sbroker.broker.add_user("st-mgmt", "pw", ["management"], {"/"}))
    theirs = _named(sbroker, "st-guest-conn")
    try:
        theirs.channel()
        mine_api = Api(sbroker.management_url)
        seen = mine_api.get("/api/channels", auth=("st-mgmt", "pw"))[2]
        assert seen == []
        assert len(get(sapi, "/api/channels")) >= 1
    finally:
        theirs.close()

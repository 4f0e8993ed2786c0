"""Users, permissions, topic permissions, vhosts and limits over the management HTTP API, against an
embedded broker: status codes, JSON and error texts as RabbitMQ 3.10.8's management plugin answers them
(probed), and their effect seen over AMQP with pika."""
import base64
import hashlib
import time

import pika
import pytest

from warrenmq.testing import EmbeddedBroker

from .conftest import Api, q


@pytest.fixture(scope="module")
def adm():
    with EmbeddedBroker(management=True) as b:
        b.call(lambda: b.broker.add_user("mgmt", "mgmtpw", ["management"], {"/"}))
        b.call(lambda: b.broker.add_user("mon", "monpw", ["monitoring"], {"/"}))
        b.call(lambda: b.broker.add_user("pm", "pmpw", ["policymaker"], {"/"}))
        yield b


@pytest.fixture(scope="module")
def api(adm):
    return Api(adm.management_url)


def amqp(adm, user, password, vhost="/"):
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", adm.port, vhost, pika.PlainCredentials(user, password)))


def wait_closed(conn, timeout=5.0):
    """Pump the connection until the broker closes it; the ConnectionClosedByBroker."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn.process_data_events(0.05)
        except pika.exceptions.ConnectionClosedByBroker as e:
            return e
    raise AssertionError("the broker did not close the connection")


# ------------------------------------------------------------------- users
def test_put_creates_a_user_that_can_log_in_and_a_second_put_replaces_it(api, adm):
    status, _, _ = api.put("/api/users/u1", {"password": "pw1", "tags": "monitoring,management"})
    assert status == 201
    status, _, u = api.get("/api/users/u1")
    assert status == 200
    assert set(u) == {"name", "password_hash", "hashing_algorithm", "tags", "limits"}
    assert u["tags"] == ["monitoring", "management"] and u["limits"] == {}
    assert u["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    raw = base64.b64decode(u["password_hash"])
    assert raw[4:] == hashlib.sha256(raw[:4] + b"pw1").digest()  # salted SHA-256, as RabbitMQ
    assert api.get("/api/whoami", auth=("u1", "pw1"))[2] == {"name": "u1", "tags": ["monitoring", "management"]}
    assert api.put("/api/users/u1", {"password": "pw2", "tags": ["administrator"]})[0] == 204
    assert api.get("/api/whoami", auth=("u1", "pw1"))[0] == 401
    assert api.get("/api/whoami", auth=("u1", "pw2"))[2]["tags"] == ["administrator"]
    assert api.delete("/api/users/u1")[0] == 204
    assert api.get("/api/users/u1")[0] == 404


def test_a_password_hash_is_imported_with_its_algorithm(api, adm):
    salt = b"\x01\x02\x03\x04"
    for algorithm, fn in (("rabbit_password_hashing_sha512", hashlib.sha512),
                          ("rabbit_password_hashing_md5", hashlib.md5)):
        h = base64.b64encode(salt + fn(salt + b"hashed").digest()).decode()
        assert api.put("/api/users/hashed", {"password_hash": h, "hashing_algorithm": algorithm,
                                             "tags": ""})[0] in (201, 204)
        assert api.get("/api/users/hashed")[2]["hashing_algorithm"] == algorithm
        assert api.put("/api/permissions/%2F/hashed", {"configure": ".*", "write": ".*", "read": ".*"})[0] in (201, 204)
        conn = amqp(adm, "hashed", "hashed")  # the imported hash logs in over AMQP
        conn.close()
    api.delete("/api/users/hashed")


def test_user_put_errors_as_rabbitmq(api):
    status, _, body = api.put("/api/users/e1", {"password": "x"})
    assert (status, body) == (400, {"error": "bad_request", "reason": "tags_not_present"})
    assert api.put("/api/users/e1", {"password_hash": "abc", "tags": ""})[2] == {
        "error": "bad_request", "reason": ["not_base64", "abc"]}
    assert api.put("/api/users/e1", {"password": "a", "password_hash": "", "tags": ""})[2] == {
        "error": "bad_request", "reason": "both_password_and_password_hash_are_provided"}
    status, _, body = api.request("PUT", "/api/users/e1", raw_body=b"notjson")
    assert (status, body) == (400, {"error": "bad_request", "reason": "not_json"})
    assert api.get("/api/users/e1")[0] == 404
    assert api.get("/api/users/nosuch")[2] == {"error": "Object Not Found", "reason": "Not Found"}
    assert api.delete("/api/users/nosuch")[0] == 404


def test_a_user_without_password_cannot_log_in_and_a_put_without_password_clears_it(api, adm):
    assert api.put("/api/users/nopw", {"tags": "management"})[0] == 201
    assert api.get("/api/whoami", auth=("nopw", ""))[0] == 401  # blank passwords are refused
    assert api.put("/api/users/nopw", {"password": "set", "tags": "management"})[0] == 204
    assert api.get("/api/whoami", auth=("nopw", "set"))[0] == 200
    assert api.put("/api/users/nopw", {"tags": "management"})[0] == 204  # no password given: cleared
    assert api.get("/api/whoami", auth=("nopw", "set"))[0] == 401
    assert api.get("/api/users/nopw")[2]["password_hash"] == ""
    api.delete("/api/users/nopw")


def test_users_listing_without_permissions_and_bulk_delete(api):
    for name in ("bulk-a", "bulk-b", "bulk-c"):
        api.put(f"/api/users/{name}", {"password": "x", "tags": ""})
    api.put("/api/permissions/%2F/bulk-c", {"configure": "", "write": "", "read": ""})
    names = [u["name"] for u in api.get("/api/users")[2]]
    assert {"guest", "bulk-a", "bulk-b", "bulk-c"} <= set(names) and names == sorted(names)
    without = {u["name"] for u in api.get("/api/users/without-permissions")[2]}
    assert {"bulk-a", "bulk-b"} <= without and "bulk-c" not in without and "guest" not in without
    status, _, body = api.request("POST", "/api/users/bulk-delete", {"users": ["bulk-a", "bulk-b"]})
    assert status == 204 and body is None
    assert api.get("/api/users/bulk-a")[0] == 404 and api.get("/api/users/bulk-b")[0] == 404
    status, _, body = api.request("POST", "/api/users/bulk-delete", {"users": ["bulk-c", "nosuch"]})
    assert (status, body) == (400, {"error": "bad_request", "reason": ["no_such_user", "nosuch"]})
    assert api.get("/api/users/bulk-c")[0] == 404  # deleted in order, before the unknown one
    assert api.request("POST", "/api/users/bulk-delete", {})[2] == {"error": "bad_request",
                                                                    "reason": "[{key_missing,users}]"}


def test_deleting_a_user_closes_its_connections(api, adm):
    api.put("/api/users/doomed", {"password": "pw", "tags": ""})
    api.put("/api/permissions/%2F/doomed", {"configure": ".*", "write": ".*", "read": ".*"})
    conn = amqp(adm, "doomed", "pw")
    assert api.delete("/api/users/doomed")[0] == 204
    e = wait_closed(conn)
    assert e.reply_code == 320 and e.reply_text == "CONNECTION_FORCED - user 'doomed' is deleted"


# ------------------------------------------------------------------- tag gating
@pytest.mark.parametrize("path", ["/api/users", "/api/users/guest", "/api/users/without-permissions",
                                  "/api/permissions", "/api/topic-permissions", "/api/vhosts/%2F/permissions",
                                  "/api/users/guest/permissions", "/api/permissions/%2F/guest"])
def test_administration_needs_the_administrator_tag(api, path):
    for user in (("mgmt", "mgmtpw"), ("mon", "monpw"), ("pm", "pmpw")):
        status, headers, body = api.get(path, auth=user)
        assert status == 401 and "WWW-Authenticate" not in headers
        assert body == {"error": "not_authorised", "reason": "Not administrator user"}


def test_changes_need_the_administrator_tag(api):
    for method, path, body in (("PUT", "/api/users/x", {"password": "x", "tags": ""}),
                               ("DELETE", "/api/users/guest", None),
                               ("PUT", "/api/vhosts/x", {}), ("DELETE", "/api/vhosts/%2F", None),
                               ("PUT", "/api/permissions/%2F/mgmt", {"configure": ".*", "write": ".*", "read": ".*"}),
                               ("PUT", "/api/vhost-limits/%2F/max-queues", {"value": 1}),
                               ("PUT", "/api/user-limits/mgmt/max-channels", {"value": 1})):
        status, _, answer = api.request(method, path, body, auth=("pm", "pmpw"))
        assert (status, answer) == (401, {"error": "not_authorised", "reason": "Not administrator user"}), path
    assert api.get("/api/users/guest")[0] == 200 and api.get("/api/vhosts/%2F")[0] == 200


# ------------------------------------------------------------------- permissions
def test_permissions_crud(api, adm):
    api.put("/api/users/perm-u", {"password": "pw", "tags": ""})
    path = "/api/permissions/%2F/perm-u"
    assert api.get(path)[0] == 404
    assert api.put(path, {"configure": "^perm-", "write": ".*", "read": ".*"})[0] == 201
    assert api.put(path, {"configure": "^perm-", "write": ".*", "read": ".*"})[0] == 204
    assert api.get(path)[2] == {"user": "perm-u", "vhost": "/", "configure": "^perm-", "write": ".*", "read": ".*"}
    assert {"user": "perm-u", "vhost": "/", "configure": "^perm-", "write": ".*",
            "read": ".*"} in api.get("/api/permissions")[2]
    assert api.get("/api/users/perm-u/permissions")[2] == [api.get(path)[2]]
    assert [p["user"] for p in api.get("/api/vhosts/%2F/permissions")[2]] == sorted(
        p["user"] for p in api.get("/api/vhosts/%2F/permissions")[2])
    # enforced over AMQP at once
    conn = amqp(adm, "perm-u", "pw")
    ch = conn.channel()
    ch.queue_declare("perm-ok")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("other")
    assert e.value.reply_text == "ACCESS_REFUSED - access to queue 'other' in vhost '/' refused for user 'perm-u'"
    conn.close()
    assert api.put(path, {"configure": ".*", "write": ".*"})[2] == {"error": "bad_request",
                                                                   "reason": "[{key_missing,read}]"}
    status, _, body = api.put(path, {"configure": "(", "write": ".*", "read": ".*"})
    assert status == 400 and body["reason"][0] == "invalid_regexp"
    assert api.put("/api/permissions/%2F/nosuch", {"configure": ".*", "write": ".*", "read": ".*"})[2] == {
        "error": "bad_request", "reason": "vhost_or_user_not_found"}
    assert api.put("/api/permissions/nosuch/perm-u", {"configure": ".*", "write": ".*", "read": ".*"})[0] == 400
    assert api.delete(path)[0] == 204
    assert api.delete(path)[0] == 404
    assert api.get("/api/users/perm-u/permissions")[2] == []
    assert api.get("/api/users/nosuch/permissions")[0] == 404
    api.delete("/api/users/perm-u")
    api.delete("/api/queues/%2F/perm-ok")


def test_topic_permissions_crud(api, adm):
    api.put("/api/users/tp-u", {"password": "pw", "tags": ""})
    api.put("/api/permissions/%2F/tp-u", {"configure": ".*", "write": ".*", "read": ".*"})
    path = "/api/topic-permissions/%2F/tp-u"
    assert api.get(path)[0] == 404
    assert api.put(path, {"exchange": "amq.topic", "write": "^a\\.", "read": ".*"})[0] == 201
    assert api.put(path, {"exchange": "amq.topic", "write": "^a\\.", "read": ".*"})[0] == 204
    entry = {"user": "tp-u", "vhost": "/", "exchange": "amq.topic", "write": "^a\\.", "read": ".*"}
    assert api.get(path)[2] == [entry]
    assert entry in api.get("/api/topic-permissions")[2]
    assert api.get("/api/users/tp-u/topic-permissions")[2] == [entry]
    assert entry in api.get("/api/vhosts/%2F/topic-permissions")[2]
    conn = amqp(adm, "tp-u", "pw")
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("amq.topic", "a.ok", b"x")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.basic_publish("amq.topic", "b.no", b"x")
    assert e.value.reply_text == ("ACCESS_REFUSED - access to topic 'b.no' in exchange 'amq.topic' in vhost '/' "
                                  "refused for user 'tp-u'")
    conn.close()
    assert api.put(path, {"write": ".*", "read": ".*"})[2] == {"error": "bad_request",
                                                              "reason": "[{key_missing,exchange}]"}
    assert api.delete(path)[0] == 204
    assert api.delete(path)[0] == 404
    api.delete("/api/users/tp-u")


# ------------------------------------------------------------------- vhosts
def test_vhost_put_get_delete(api, adm):
    status, _, _ = api.put("/api/vhosts/adm-v", {"description": "d", "tags": "a,b", "defaultqueuetype": "classic"})
    assert status == 201
    status, _, v = api.get("/api/vhosts/adm-v")
    assert status == 200
    assert v["name"] == "adm-v" and v["description"] == "d" and v["tags"] == ["a", "b"]
    assert v["metadata"] == {"description": "d", "tags": ["a", "b"], "default_queue_type": "classic"}
    assert v["default_queue_type"] == "classic"
    assert v["tracing"] is False and "cluster_state" in v
    assert api.put("/api/vhosts/adm-v", {"tags": ["x"]})[0] == 204  # a PUT replaces the metadata
    v = api.get("/api/vhosts/adm-v")[2]
    assert (v["description"], v["tags"]) == ("", ["x"])
    assert "adm-v" in [x["name"] for x in api.get("/api/vhosts")[2]]
    assert api.get("/api/vhosts/%2F")[2]["description"] == "Default virtual host"
    # its creator (guest) got every permission in it, as RabbitMQ does
    assert api.get("/api/permissions/adm-v/guest")[2] == {"user": "guest", "vhost": "adm-v", "configure": ".*",
                                                         "write": ".*", "read": ".*"}
    conn = amqp(adm, "guest", "guest", "adm-v")
    conn.channel().queue_declare("vq")
    assert api.delete("/api/vhosts/adm-v")[0] == 204
    e = wait_closed(conn)
    assert e.reply_code == 320 and e.reply_text == "CONNECTION_FORCED - vhost 'adm-v' is down"
    assert api.get("/api/vhosts/adm-v")[0] == 404
    assert api.delete("/api/vhosts/adm-v")[0] == 404
    assert api.put("/api/vhosts/adm-v2", None)[0] == 201  # an empty body is {}
    v = api.get("/api/vhosts/adm-v2")[2]
    assert v["default_queue_type"] == "undefined" and "default_queue_type" not in v["metadata"]
    api.delete("/api/vhosts/adm-v2")


def test_a_vhost_default_queue_type_is_set_on_creation_and_applies_to_declares(api, adm):
    status, _, body = api.put("/api/vhosts/dqt-bad", {"defaultqueuetype": "bogus"})
    assert (status, body) == (500, {"error": "Error occured while adding vhost", "reason": "invalid_queue_type"})
    assert api.get("/api/vhosts/dqt-bad")[0] == 404
    assert api.put("/api/vhosts/dqt", {"defaultqueuetype": "quorum", "description": "x"})[0] == 201
    v = api.get("/api/vhosts/dqt")[2]
    assert v["default_queue_type"] == "quorum"
    assert v["metadata"] == {"default_queue_type": "quorum", "description": "x", "tags": []}
    assert api.put("/api/vhosts/dqt", {"defaultqueuetype": "classic"})[0] == 204  # an update keeps it
    assert api.get("/api/vhosts/dqt")[2]["default_queue_type"] == "quorum"
    conn = amqp(adm, "guest", "guest", "dqt")
    ch = conn.channel()
    ch.queue_declare("durable-q", durable=True)
    ch.queue_declare("transient-q", durable=False)  # a quorum queue must be durable: stays classic
    conn.close()
    assert api.get("/api/queues/dqt/durable-q")[2]["type"] == "quorum"
    assert api.get("/api/queues/dqt/transient-q")[2]["type"] == "classic"
    api.delete("/api/vhosts/dqt")


def test_vhost_views_need_access(api):
    api.put("/api/vhosts/private", {})
    status, _, body = api.get("/api/vhosts/private", auth=("mgmt", "mgmtpw"))
    # RabbitMQ 3.10.8 (probed; tests/differential/test_management_api.py): one vhost is for administrators
    assert (status, body) == (401, {"error": "not_authorised", "reason": "Not administrator user"})
    assert "private" not in [v["name"] for v in api.get("/api/vhosts", auth=("mgmt", "mgmtpw"))[2]]
    assert "private" in [v["name"] for v in api.get("/api/vhosts", auth=("mon", "monpw"))[2]]
    api.delete("/api/vhosts/private")


# ------------------------------------------------------------------- limits
def test_vhost_limits(api, adm):
    api.put("/api/vhosts/lim-v", {})
    assert api.get("/api/vhost-limits/lim-v")[2] == []
    assert api.put("/api/vhost-limits/lim-v/max-connections", {"value": 10})[0] == 204
    assert api.put("/api/vhost-limits/lim-v/max-queues", {"value": 1})[0] == 204
    assert api.get("/api/vhost-limits/lim-v")[2] == [{"vhost": "lim-v", "value": {"max-connections": 10,
                                                                                   "max-queues": 1}}]
    assert {"vhost": "lim-v", "value": {"max-connections": 10, "max-queues": 1}} in api.get("/api/vhost-limits")[2]
    assert {"value": {"max-connections": 10, "max-queues": 1}, "vhost": "lim-v", "component": "vhost-limits",
            "name": "limits"} in api.get("/api/parameters/vhost-limits")[2]
    conn = amqp(adm, "guest", "guest", "lim-v")
    ch = conn.channel()
    ch.queue_declare("one")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        ch.queue_declare("two")
    conn.close()
    assert api.put("/api/vhost-limits/lim-v/max-foo", {"value": 1})[2] == {
        "error": "bad_request", "reason": 'Validation failed\n\nUnrecognised terms [{<<"max-foo">>,1}] in limits\n'}
    assert api.put("/api/vhost-limits/lim-v/max-queues", {"value": "x"})[2] == {
        "error": "bad_request", "reason": 'Validation failed\n\nmax-queues should be a number, actually was <<"x">>\n'}
    assert api.put("/api/vhost-limits/lim-v/max-queues", {})[2]["reason"] == "[{key_missing,value}]"
    assert api.put("/api/vhost-limits/nosuch/max-queues", {"value": 1})[2] == {"error": "not_found",
                                                                              "reason": "vhost_not_found"}
    assert api.get("/api/vhost-limits/nosuch")[0] == 404
    assert api.delete("/api/vhost-limits/lim-v/max-queues")[0] == 204
    assert api.delete("/api/vhost-limits/lim-v/max-connections")[0] == 204
    assert api.get("/api/vhost-limits/lim-v")[2] == []
    api.delete("/api/vhosts/lim-v")


def test_user_limits(api):
    api.put("/api/users/lim-u", {"password": "x", "tags": ""})
    assert api.put("/api/user-limits/lim-u/max-channels", {"value": 7})[0] == 204
    assert api.put("/api/user-limits/lim-u/max-connections", {"value": 3})[0] == 204
    assert api.get("/api/user-limits/lim-u")[2] == [{"user": "lim-u", "value": {"max-channels": 7,
                                                                                 "max-connections": 3}}]
    assert api.get("/api/users/lim-u")[2]["limits"] == {"max-channels": 7, "max-connections": 3}
    assert {"user": "lim-u", "value": {"max-channels": 7, "max-connections": 3}} in api.get("/api/user-limits")[2]
    assert api.put("/api/user-limits/lim-u/max-foo", {"value": 1})[2] == {
        "error": "bad_request", "reason": 'Unrecognised terms [{<<"max-foo">>,1}] in user-limits'}
    assert api.put("/api/user-limits/nosuch/max-channels", {"value": 1})[2] == {
        "error": "bad_request", "reason": ["no_such_user", "nosuch"]}
    assert api.delete("/api/user-limits/lim-u/max-channels")[0] == 204
    assert api.get("/api/user-limits/lim-u")[2] == [{"user": "lim-u", "value": {"max-connections": 3}}]
    assert api.get("/api/user-limits/nosuch")[0] == 404
    api.delete("/api/users/lim-u")


def test_users_vhosts_and_permissions_survive_a_restart(tmp_path):
    with EmbeddedBroker(management=True, data_dir=str(tmp_path)) as b:
        api = Api(b.management_url)
        api.put("/api/vhosts/kept", {"description": "kept vhost", "tags": "t"})
        api.put("/api/users/kept-u", {"password": "pw", "tags": "management"})
        api.put("/api/permissions/kept/kept-u", {"configure": "^k", "write": ".*", "read": ".*"})
        api.put("/api/topic-permissions/kept/kept-u", {"exchange": "amq.topic", "write": "^k", "read": ".*"})
        api.put("/api/user-limits/kept-u/max-channels", {"value": 4})
        api.put("/api/vhost-limits/kept/max-queues", {"value": 9})
    with EmbeddedBroker(management=True, data_dir=str(tmp_path)) as b:
        api = Api(b.management_url)
        v = api.get("/api/vhosts/kept")[2]
        assert (v["description"], v["tags"]) == ("kept vhost", ["t"])
        assert api.get("/api/whoami", auth=("kept-u", "pw"))[2] == {"name": "kept-u", "tags": ["management"]}
        assert api.get("/api/permissions/kept/kept-u")[2]["configure"] == "^k"
        assert api.get("/api/topic-permissions/kept/kept-u")[2][0]["write"] == "^k"
        assert api.get("/api/user-limits/kept-u")[2] == [{"user": "kept-u", "value": {"max-channels": 4}}]
        assert api.get("/api/vhost-limits/kept")[2] == [{"vhost": "kept", "value": {"max-queues": 9}}]

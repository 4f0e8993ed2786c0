"""Policies, operator policies, runtime parameters and global parameters over the management HTTP API,
against an embedded broker: RabbitMQ 3.10.8's status codes, JSON and validation texts (probed), and the
policies' effect on queues seen over the API and AMQP."""
import pika
import pytest

from warrenmq.testing import EmbeddedBroker

from .conftest import Api


@pytest.fixture(scope="module")
def pb():
    with EmbeddedBroker(management=True) as b:
        b.call(lambda: b.broker.add_vhost("pv"))
        b.call(lambda: b.broker.set_permissions("guest", "pv", ".*", ".*", ".*"))
        b.call(lambda: b.broker.add_user("pm", "pmpw", ["policymaker"], {"/"}))  # no access to pv
        b.call(lambda: b.broker.add_user("mgmt", "mgmtpw", ["management"], {"/", "pv"}))
        yield b


@pytest.fixture(scope="module")
def api(pb):
    return Api(pb.management_url)


def failed(reason: str) -> dict:
    return {"error": "bad_request", "reason": f"Validation failed\n\n{reason}\n"}


# ------------------------------------------------------------------- policies
def test_policy_crud_and_its_effect_on_queues(api, pb):
    assert api.put("/api/queues/%2F/pol-q", {"durable": False})[0] == 201
    body = {"pattern": "^pol-", "definition": {"max-length": 2}, "priority": 1, "apply-to": "queues"}
    assert api.put("/api/policies/%2F/pol", body)[0] == 201
    assert api.put("/api/policies/%2F/pol", body)[0] == 204
    expected = {"vhost": "/", "name": "pol", "pattern": "^pol-", "apply-to": "queues",
                "definition": {"max-length": 2}, "priority": 1}
    assert api.get("/api/policies/%2F/pol")[2] == expected
    assert expected in api.get("/api/policies/%2F")[2] and expected in api.get("/api/policies")[2]
    q = api.get("/api/queues/%2F/pol-q")[2]
    assert q["policy"] == "pol" and q["effective_policy_definition"] == {"max-length": 2}
    assert q["operator_policy"] is None
    conn = pika.BlockingConnection(pika.URLParameters(pb.url))
    ch = conn.channel()
    for i in range(5):
        ch.basic_publish("", "pol-q", b"m%d" % i)
    pb.wait_for_messages("pol-q", 2)
    conn.close()
    assert api.get("/api/queues/%2F/pol-q")[2]["messages"] == 2  # max-length applied: drop-head
    assert api.delete("/api/policies/%2F/pol")[0] == 204
    assert api.get("/api/queues/%2F/pol-q")[2]["policy"] is None
    assert api.get("/api/policies/%2F/pol")[0] == 404
    assert api.delete("/api/policies/%2F/pol")[0] == 404
    api.delete("/api/queues/%2F/pol-q")


def test_policy_validation_errors_are_rabbitmqs(api):
    path = "/api/policies/%2F/bad"
    assert api.put(path, {"pattern": "^a", "definition": {"max-length": "x"}})[2] == failed(
        "&lt;&lt;\"x\"&gt;&gt; is not a valid maximum length")
    assert api.put(path, {"pattern": "^a", "definition": {"foo": 1}})[2] == failed(
        "[{&lt;&lt;\"foo\"&gt;&gt;,1}] are not recognised policy settings")
    assert api.put(path, {"pattern": "^a", "definition": {}})[2] == failed("no policy provided")
    assert api.put(path, {"definition": {"max-length": 1}})[2] == {"error": "bad_request",
                                                                  "reason": "[{key_missing,pattern}]"}
    assert api.put(path, {"pattern": "a", "definition": {"max-length": 1}, "priority": "5"})[2] == failed(
        "priority should be a number, actually was &lt;&lt;\"5\"&gt;&gt;")
    assert api.put(path, {"pattern": "a", "definition": {"max-length": 1}, "apply-to": "foo"})[2] == failed(
        "apply-to 'foo' unrecognised; should be 'queues', 'exchanges' or 'all'")
    status, _, body = api.put(path, {"pattern": "(", "definition": {"max-length": 1}})
    assert status == 400 and body["reason"].startswith(
        "Validation failed\n\npattern should be regular expression but is invalid: ")
    assert api.put("/api/policies/nosuch/bad", {"pattern": "a", "definition": {"max-length": 1}})[2] == {
        "error": "not_found", "reason": "vhost_not_found"}
    assert api.get(path)[0] == 404


def test_policies_need_a_policymaker_with_access_to_the_vhost(api):
    body = {"pattern": "^x", "definition": {"max-length": 1}}
    assert api.put("/api/policies/%2F/by-pm", body, auth=("pm", "pmpw"))[0] == 201
    assert api.get("/api/policies/%2F/by-pm", auth=("pm", "pmpw"))[0] == 200
    status, _, answer = api.put("/api/policies/pv/by-pm", body, auth=("pm", "pmpw"))
    assert (status, answer) == (401, {"error": "not_authorised", "reason": "User not authorised to access object"})
    status, _, answer = api.put("/api/policies/%2F/by-mgmt", body, auth=("mgmt", "mgmtpw"))
    assert (status, answer) == (401, {"error": "not_authorised", "reason": "User not authorised to access object"})
    assert api.get("/api/policies/pv", auth=("pm", "pmpw"))[2] == {
        "error": "not_authorised", "reason": "User not authorised to access virtual host"}
    # listings show what the user may see: the management user sees policies of its vhosts
    assert [p["name"] for p in api.get("/api/policies", auth=("mgmt", "mgmtpw"))[2]] == ["by-pm"]
    assert api.delete("/api/policies/%2F/by-pm", auth=("pm", "pmpw"))[0] == 204


# ------------------------------------------------------------------- operator policies
def test_operator_policies_merge_with_policies_the_stricter_value_winning(api, pb):
    assert api.put("/api/queues/pv/op-q", {"durable": False})[0] == 201
    assert api.put("/api/policies/pv/user", {"pattern": "^op-", "definition": {"max-length": 100,
                                                                              "message-ttl": 5000}})[0] == 201
    assert api.put("/api/operator-policies/pv/cap", {"pattern": "^op-", "definition": {"max-length": 3,
                   "message-ttl": 60000}, "priority": 0, "apply-to": "queues"})[0] == 201
    assert api.put("/api/operator-policies/pv/cap", {"pattern": "^op-", "definition": {"max-length": 3,
                   "message-ttl": 60000}, "priority": 0, "apply-to": "queues"})[0] == 204
    expected = {"vhost": "pv", "name": "cap", "pattern": "^op-", "apply-to": "queues",
                "definition": {"max-length": 3, "message-ttl": 60000}, "priority": 0}
    assert api.get("/api/operator-policies/pv/cap")[2] == expected
    assert api.get("/api/operator-policies/pv")[2] == [expected]
    assert expected in api.get("/api/operator-policies")[2]
    q = api.get("/api/queues/pv/op-q")[2]
    assert (q["policy"], q["operator_policy"]) == ("user", "cap")
    assert q["effective_policy_definition"] == {"max-length": 3, "message-ttl": 5000}
    # listed among the parameters as RabbitMQ lists them
    assert {"value": {"pattern": "^op-", "definition": {"max-length": 3, "message-ttl": 60000}, "priority": 0,
                      "apply-to": "queues"}, "vhost": "pv", "component": "operator_policy",
            "name": "cap"} in api.get("/api/parameters")[2]
    # operator policies accept only their keys, and their errors are not HTML-escaped
    assert api.put("/api/operator-policies/pv/dlx", {"pattern": ".*", "definition": {
        "dead-letter-exchange": "x"}})[2] == failed('[{<<"dead-letter-exchange">>,<<"x">>}] are not recognised '
                                                    'policy settings')
    status, _, body = api.put("/api/operator-policies/%2F/x", {"pattern": ".*", "definition": {"max-length": 1}},
                              auth=("pm", "pmpw"))
    assert (status, body["reason"]) == (401, "Not administrator user")
    assert api.delete("/api/operator-policies/pv/cap")[0] == 204
    assert api.delete("/api/operator-policies/pv/cap")[0] == 404
    q = api.get("/api/queues/pv/op-q")[2]
    assert (q["operator_policy"], q["effective_policy_definition"]) == (None, {"max-length": 100,
                                                                              "message-ttl": 5000})
    api.delete("/api/policies/pv/user")
    api.delete("/api/queues/pv/op-q")


# ------------------------------------------------------------------- parameters
def test_parameters_of_an_unknown_component_are_refused(api):
    assert api.put("/api/parameters/foo/%2F/x", {"value": 1})[2] == failed("component foo not found")
    assert api.get("/api/parameters/foo")[2] == []
    assert api.get("/api/parameters/foo/%2F/x")[0] == 404
    assert api.put("/api/parameters/foo/nosuch/x", {"value": 1})[2] == {"error": "not_found",
                                                                        "reason": "vhost_not_found"}


def test_parameters_of_a_registered_component(api, pb):
    seen = []

    def validate(vhost, name, value):
        if not isinstance(value, dict) or "uri" not in value:
            raise ValueError("uri is mandatory")

    pb.call(lambda: pb.broker.register_parameter_component(
        "test-upstream", validate, on_set=lambda v, n, x: seen.append((v, n, x))))
    path = "/api/parameters/test-upstream/%2F/up"
    assert api.put(path, {"value": {}})[2] == failed("uri is mandatory")
    assert api.put(path, {"value": {"uri": "amqp://a"}})[0] == 201
    assert api.put(path, {"component": "test-upstream", "vhost": "/", "name": "up",
                          "value": {"uri": "amqp://b"}})[0] == 204
    entry = {"value": {"uri": "amqp://b"}, "vhost": "/", "component": "test-upstream", "name": "up"}
    assert api.get(path)[2] == entry
    assert api.get("/api/parameters/test-upstream")[2] == [entry]
    assert api.get("/api/parameters/test-upstream/%2F")[2] == [entry]
    assert entry in api.get("/api/parameters")[2]
    assert seen == [("/", "up", {"uri": "amqp://a"}), ("/", "up", {"uri": "amqp://b"})]
    assert api.put(path, {})[2] == {"error": "bad_request", "reason": "[{key_missing,value}]"}
    assert api.delete(path)[0] == 204
    assert api.delete(path)[0] == 404


def test_vhost_limits_are_a_parameter_component(api):
    assert api.put("/api/parameters/vhost-limits/pv/limits", {"value": {"max-queues": 3}})[0] == 201
    assert api.get("/api/vhost-limits/pv")[2] == [{"vhost": "pv", "value": {"max-queues": 3}}]
    assert api.get("/api/parameters/vhost-limits/pv/limits")[2] == {
        "value": {"max-queues": 3}, "vhost": "pv", "component": "vhost-limits", "name": "limits"}
    assert api.put("/api/parameters/vhost-limits/pv/limits", {"value": {"max-foo": 1}})[2] == failed(
        'Unrecognised terms [{&lt;&lt;"max-foo"&gt;&gt;,1}] in limits')  # escaped, as RabbitMQ's
    assert api.put("/api/parameters/vhost-limits/pv/limits", {"value": {"max-queues": "x"}})[2] == failed(
        'max-queues should be a number, actually was &lt;&lt;"x"&gt;&gt;')
    assert api.delete("/api/parameters/vhost-limits/pv/limits")[0] == 204
    assert api.get("/api/vhost-limits/pv")[2] == []


def test_policies_are_listed_as_parameters_only_by_name_and_not_set_that_way(api):
    api.put("/api/policies/pv/listed", {"pattern": "^l", "definition": {"max-length": 1}, "priority": 2})
    entry = {"value": {"pattern": "^l", "definition": {"max-length": 1}, "priority": 2, "apply-to": "all"},
             "vhost": "pv", "component": "policy", "name": "listed"}
    assert api.get("/api/parameters/policy")[2] == [entry]
    assert entry not in api.get("/api/parameters")[2]
    assert api.put("/api/parameters/policy/pv/other", {"value": entry["value"]})[2] == {
        "error": "bad_request", "reason": "policies may not be set using this method"}
    assert api.put("/api/parameters/operator_policy/pv/op", {"value": {"pattern": ".*", "definition": {
        "max-length": 1}}})[2] == failed('Key "priority" not found in op')
    assert api.put("/api/parameters/operator_policy/pv/op", {"value": {"pattern": ".*", "priority": 0, "definition": {
        "max-length": 1}}})[0] == 201
    assert api.get("/api/operator-policies/pv/op")[2]["definition"] == {"max-length": 1}
    api.delete("/api/operator-policies/pv/op")
    api.delete("/api/policies/pv/listed")


def test_parameters_need_a_policymaker(api):
    for path in ("/api/parameters", "/api/parameters/vhost-limits", "/api/global-parameters",
                 "/api/global-parameters/internal_cluster_id"):
        status, _, body = api.get(path, auth=("mgmt", "mgmtpw"))
        assert (status, body) == (401, {"error": "not_authorised", "reason": "User not authorised to access object"})
    assert api.get("/api/parameters", auth=("pm", "pmpw"))[0] == 200


def test_global_parameters(api):
    params = api.get("/api/global-parameters")[2]
    assert [p["name"] for p in params] == ["internal_cluster_id"]
    assert params[0]["value"].startswith("rabbitmq-cluster-id-")
    assert api.put("/api/global-parameters/g1", {"value": {"a": 1}})[0] == 201
    assert api.put("/api/global-parameters/g1", {"value": {"a": 2}})[0] == 204
    assert api.get("/api/global-parameters/g1")[2] == {"value": {"a": 2}, "name": "g1"}
    assert api.put("/api/global-parameters/g2", {"name": "g2"})[2] == {"error": "bad_request",
                                                                      "reason": "[{key_missing,value}]"}
    assert api.get("/api/global-parameters/nosuch")[0] == 404
    assert api.delete("/api/global-parameters/g1")[0] == 204
    assert api.delete("/api/global-parameters/g1")[0] == 404


def test_policies_and_parameters_survive_a_restart(tmp_path):
    with EmbeddedBroker(management=True, data_dir=str(tmp_path)) as b:
        api = Api(b.management_url)
        api.put("/api/policies/%2F/p", {"pattern": "^k", "definition": {"max-length": 5}, "priority": 3})
        api.put("/api/operator-policies/%2F/op", {"pattern": "^k", "definition": {"max-length": 2}})
        api.put("/api/global-parameters/g", {"value": [1, "two"]})
        cluster_id = api.get("/api/global-parameters/internal_cluster_id")[2]["value"]
    with EmbeddedBroker(management=True, data_dir=str(tmp_path)) as b:
        api = Api(b.management_url)
        assert api.get("/api/policies/%2F/p")[2]["priority"] == 3
        assert api.get("/api/operator-policies/%2F/op")[2]["definition"] == {"max-length": 2}
        assert api.get("/api/global-parameters/g")[2] == {"value": [1, "two"], "name": "g"}
        assert api.get("/api/global-parameters/internal_cluster_id")[2]["value"] == cluster_id
        api.put("/api/queues/%2F/kq", {"durable": False})
        q = api.get("/api/queues/%2F/kq")[2]
        assert (q["policy"], q["operator_policy"], q["effective_policy_definition"]) == ("p", "op", {"max-length": 2})


# ------------------------------------------------------------ classic mirroring
HA_DEFINITION = {"ha-mode": "exactly", "ha-params": 2, "ha-sync-mode": "automatic", "ha-sync-batch-size": 50,
                 "ha-promote-on-shutdown": "when-synced", "ha-promote-on-failure": "always",
                 "queue-master-locator": "client-local", "queue-mode": "lazy", "message-ttl": 60000}


def test_classic_mirroring_policies_are_checked_stored_and_apply_nothing_else(api, pb):
    path = "/api/policies/%2F/ha"
    assert api.put(path, {"pattern": "^haq", "definition": {"ha-mode": "exactly"}})[2] == failed(
        'ha-mode="exactly" takes an integer, none given')
    assert api.put(path, {"pattern": "^haq", "definition": {"ha-sync-mode": "automatic"}})[2] == failed(
        "ha-mode must be specified to specify ha-params, ha-sync-mode or ha-promote-on-shutdown")
    assert api.put(path, {"pattern": "^haq", "definition": {"ha-mode": "nodes", "ha-params": [1]}})[2] == failed(
        'ha-mode="nodes" takes a list of strings, [1] was not a string')
    assert api.put(path, {"pattern": "^haq", "definition": {"ha-mode": 1}})[2] == failed(
        "1 is not a valid ha-mode value")  # RabbitMQ 3.10: a 500
    assert api.get(path)[0] == 404
    assert api.put(path, {"pattern": "^haq", "definition": HA_DEFINITION})[0] == 201
    assert api.put("/api/queues/%2F/haq", {"durable": False})[0] == 201
    q = api.get("/api/queues/%2F/haq")[2]
    assert q["policy"] == "ha" and q["effective_policy_definition"] == HA_DEFINITION
    assert q["slave_nodes"] == [] and q["synchronised_slave_nodes"] == []
    # the settings WarrenMQ has still apply next to the mirroring keys
    conn = pika.BlockingConnection(pika.URLParameters(pb.url))
    ch = conn.channel()
    ch.basic_publish("", "haq", b"m")
    pb.wait_for_messages("haq", 1)
    conn.close()
    assert pb.call(lambda: pb.broker.vhosts["/"].queues["haq"].message_ttl) == 60000
    assert api.delete(path)[0] == 204
    q = api.get("/api/queues/%2F/haq")[2]
    assert q["policy"] is None and "slave_nodes" not in q
    api.delete("/api/queues/%2F/haq")


def test_a_rabbitmq_cluster_export_with_mirroring_policies_imports_and_survives_a_restart(tmp_path):
    definitions = {"rabbit_version": "3.10.8", "rabbitmq_version": "3.10.8", "vhosts": [{"name": "/"}],
                   "policies": [{"vhost": "/", "name": "ha-all", "pattern": ".*", "apply-to": "queues",
                                 "definition": {"ha-mode": "all", "ha-sync-mode": "automatic"}, "priority": 0},
                                {"vhost": "/", "name": "ha-two", "pattern": "^two\\.", "apply-to": "queues",
                                 "definition": HA_DEFINITION, "priority": 1}],
                   "queues": [{"name": "two.q", "vhost": "/", "durable": True, "auto_delete": False,
                               "arguments": {}}]}
    with EmbeddedBroker(management=True, data_dir=str(tmp_path)) as b:
        api = Api(b.management_url)
        assert api.request("POST", "/api/definitions", definitions)[0] == 204
    with EmbeddedBroker(management=True, data_dir=str(tmp_path)) as b:
        api = Api(b.management_url)
        exported = api.get("/api/definitions")[2]["policies"]
        assert sorted(exported, key=lambda p: p["name"]) == definitions["policies"]
        assert api.get("/api/queues/%2F/two.q")[2]["effective_policy_definition"] == HA_DEFINITION
        bad = dict(definitions, policies=[dict(definitions["policies"][0], definition={"ha-mode": "exactly"})])
        status, _, body = api.request("POST", "/api/definitions", bad)
        assert status == 400 and 'ha-mode="exactly" takes an integer, none given' in body["reason"], body
        assert api.get("/api/policies/%2F/ha-all")[2]["definition"] == {"ha-mode": "all",
                                                                         "ha-sync-mode": "automatic"}

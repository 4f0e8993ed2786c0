"""Domain tests: operator policies (merged with policies, the stricter value wins), runtime parameters with
their component registry, global parameters, vhost metadata, and their durability across a restart."""
import pytest

from warrenmq.broker.broker import Broker
from warrenmq.config import BrokerConfig
from warrenmq.store import open_storage


@pytest.fixture
def b():
    broker = Broker(BrokerConfig(data_dir=""))  # in memory
    yield broker
    broker.close()


def declare(b, name, arguments=None, vhost="/"):
    q, _ = b.vhosts[vhost].declare_queue(name, None, durable=True, arguments=arguments or {})
    return q


# ------------------------------------------------------------------ operator policies
def test_an_operator_policy_alone_applies_to_matching_queues(b):
    q = declare(b, "op-q")
    other = declare(b, "other")
    b.set_operator_policy("/", "cap", "^op-", {"max-length": 5}, apply_to="queues")
    assert q.policy is not None and q.policy.name is None and q.policy.operator_policy == "cap"
    assert q.effective("x-max-length") == 5
    assert other.policy is None and other.effective("x-max-length") is None
    later = declare(b, "op-later")  # new queues get it on creation
    assert later.effective("x-max-length") == 5
    b.clear_operator_policy("/", "cap")
    assert q.policy is None and q.effective("x-max-length") is None


def test_the_stricter_value_wins_between_policy_and_operator_policy(b):
    q = declare(b, "m-q", {"x-message-ttl": 500})
    b.set_policy("/", "user", "^m-", {"max-length": 100, "message-ttl": 60000, "dead-letter-exchange": "dlx"})
    b.set_operator_policy("/", "op", "^m-", {"max-length": 10, "message-ttl": 90000, "expires": 1000000})
    p = q.policy
    assert p.name == "user" and p.operator_policy == "op"
    assert p.definition == {"max-length": 10, "message-ttl": 60000, "dead-letter-exchange": "dlx",
                            "expires": 1000000}
    assert q.effective("x-max-length") == 10  # operator's lower
    assert q.effective("x-message-ttl") == 500  # the queue's own argument is lower still
    assert q.effective("x-dead-letter-exchange") == "dlx"
    b.set_operator_policy("/", "op", "^m-", {"max-length": 1000})
    assert q.effective("x-max-length") == 100  # now the user policy's is the stricter
    b.clear_policy("/", "user")
    assert q.policy.name is None and q.effective("x-max-length") == 1000


def test_an_unchanged_pair_keeps_its_merged_policy(b):
    q = declare(b, "k-q")
    b.set_policy("/", "user", "^k-", {"max-length": 100})
    b.set_operator_policy("/", "op", "^k-", {"max-length": 10})
    before = q.policy
    b.set_policy("/", "unrelated", "^zzz$", {"max-length": 1})
    assert q.policy is before


def test_operator_policies_accept_only_their_keys(b):
    with pytest.raises(ValueError) as e:
        b.set_operator_policy("/", "op", ".*", {"dead-letter-exchange": "x"})
    assert str(e.value) == '[{<<"dead-letter-exchange">>,<<"x">>}] are not recognised policy settings'
    with pytest.raises(ValueError) as e:
        b.set_operator_policy("/", "op", ".*", {"max-length": -1})
    assert str(e.value) == "-1 is not a valid maximum length"
    b.set_operator_policy("/", "op", ".*", {"max-in-memory-length": 5, "delivery-limit": 3})
    with pytest.raises(KeyError):
        b.set_operator_policy("nope", "op", ".*", {"max-length": 1})
    with pytest.raises(KeyError):
        b.clear_operator_policy("/", "nope")
    assert b.list_operator_policies() == [{"vhost": "/", "name": "op", "pattern": ".*", "apply-to": "all",
                                           "definition": {"max-in-memory-length": 5, "delivery-limit": 3},
                                           "priority": 0}]


def test_exchanges_take_user_policies_only(b):
    b.vhosts["/"].declare_exchange("ex", "direct")
    b.set_operator_policy("/", "op", ".*", {"max-length": 1})
    assert b.vhosts["/"].exchanges["ex"].policy is None


# ------------------------------------------------------------------ parameters
def test_an_unknown_component_is_refused_with_rabbitmqs_text(b):
    with pytest.raises(ValueError) as e:
        b.set_parameter("foo", "/", "x", 1)
    assert str(e.value) == "component foo not found"
    with pytest.raises(KeyError):
        b.set_parameter("foo", "nope", "x", 1)


def test_a_registered_component_validates_and_follows_its_parameters(b):
    seen = []

    def validate(vhost, name, value):
        if "uri" not in value:
            raise ValueError("uri is mandatory")

    b.register_parameter_component("test-upstream", validate, on_set=lambda v, n, x: seen.append(("set", v, n, x)),
                                   on_clear=lambda v, n: seen.append(("clear", v, n)))
    with pytest.raises(ValueError, match="uri is mandatory"):
        b.set_parameter("test-upstream", "/", "up", {})
    assert b.set_parameter("test-upstream", "/", "up", {"uri": "amqp://a"}) is True
    assert b.set_parameter("test-upstream", "/", "up", {"uri": "amqp://b"}) is False
    assert b.parameter("test-upstream", "/", "up") == {"value": {"uri": "amqp://b"}, "vhost": "/",
                                                       "component": "test-upstream", "name": "up"}
    assert b.list_parameters("test-upstream") == [b.parameter("test-upstream", "/", "up")]
    b.clear_parameter("test-upstream", "/", "up")
    with pytest.raises(KeyError):
        b.clear_parameter("test-upstream", "/", "up")
    assert seen == [("set", "/", "up", {"uri": "amqp://a"}), ("set", "/", "up", {"uri": "amqp://b"}),
                    ("clear", "/", "up")]


def test_vhost_limits_and_operator_policies_are_listed_as_parameters(b):
    b.set_vhost_limits("/", {"max-connections": 10})
    b.set_operator_policy("/", "op", "^a", {"max-length": 5}, apply_to="queues")
    assert b.list_parameters() == [
        {"value": {"max-connections": 10}, "vhost": "/", "component": "vhost-limits", "name": "limits"},
        {"value": {"pattern": "^a", "definition": {"max-length": 5}, "priority": 0, "apply-to": "queues"},
         "vhost": "/", "component": "operator_policy", "name": "op"}]
    assert b.set_parameter("vhost-limits", "/", "limits", {"max-queues": 3}) is False
    assert b.vhost_limits("/") == {"max-queues": 3}  # the parameter is the vhost's limits, replaced
    b.clear_parameter("vhost-limits", "/", "limits")
    assert b.vhost_limits("/") == {}


def test_deleting_a_vhost_clears_its_parameters_and_operator_policies(b):
    cleared = []
    b.register_parameter_component("c", on_clear=lambda v, n: cleared.append((v, n)))
    b.add_vhost("v")
    b.set_parameter("c", "v", "p", 1)
    b.set_operator_policy("v", "op", ".*", {"max-length": 1})
    b.delete_vhost("v")
    assert b.list_parameters() == [] and b.list_operator_policies() == [] and cleared == [("v", "p")]


def test_global_parameters(b):
    cluster_id = b.global_parameter("internal_cluster_id")["value"]
    assert cluster_id.startswith("rabbitmq-cluster-id-")
    assert b.set_global_parameter("g", {"a": 1}) is True
    assert b.set_global_parameter("g", {"a": 2}) is False
    assert b.global_parameter("g") == {"value": {"a": 2}, "name": "g"}
    assert [p["name"] for p in b.list_global_parameters()] == ["internal_cluster_id", "g"]
    b.clear_global_parameter("g")
    assert b.global_parameter("g") is None
    with pytest.raises(KeyError):
        b.clear_global_parameter("g")


def test_vhost_metadata(b):
    assert b.vhost_metadata("/") == {"description": "Default virtual host", "tags": [], "default_queue_type": None}
    b.add_vhost("v", description="d", tags="a, b", default_queue_type="classic")
    assert b.vhost_metadata("v") == {"description": "d", "tags": ["a", "b"], "default_queue_type": "classic"}
    b.add_vhost("v", tags=["x"])  # a PUT replaces the metadata
    assert b.vhost_metadata("v") == {"description": "", "tags": ["x"], "default_queue_type": None}
    with pytest.raises(KeyError):
        b.vhost_metadata("nope")
    with pytest.raises(ValueError, match="invalid_queue_type"):
        b.set_vhost_metadata("v", default_queue_type="bogus")


# ------------------------------------------------------------------ durability
def test_operator_policies_parameters_and_metadata_survive_a_restart(tmp_path):
    config = BrokerConfig(data_dir=str(tmp_path))
    b = Broker(config, open_storage(config))
    cluster_id = b.global_parameter("internal_cluster_id")["value"]
    b.add_vhost("v", description="desc", tags=["t1", "t2"], default_queue_type="classic")
    b.set_operator_policy("v", "op", "^q", {"max-length": 7}, priority=2, apply_to="queues")
    b.set_operator_policy("v", "gone", "^q", {"max-length": 1})
    b.clear_operator_policy("v", "gone")
    b.register_parameter_component("up", on_set=lambda *a: None)
    b.set_parameter("up", "v", "one", {"uri": "amqp://x", "n": [1, 2]})
    b.set_parameter("up", "v", "two", "text")
    b.clear_parameter("up", "v", "two")
    b.set_global_parameter("g", {"k": True})
    b.set_vhost_limits("v", {"max-queues": 9})
    b.add_vhost("w", description="w")
    b.set_parameter("up", "w", "p", 1)
    b.delete_vhost("w")
    b.close()

    b = Broker(config, open_storage(config))
    try:
        assert b.vhost_metadata("v") == {"description": "desc", "tags": ["t1", "t2"], "default_queue_type": "classic"}
        assert b.vhost_metadata("/")["description"] == "Default virtual host"
        assert b.list_operator_policies() == [{"vhost": "v", "name": "op", "pattern": "^q", "apply-to": "queues",
                                               "definition": {"max-length": 7}, "priority": 2}]
        q, _ = b.vhosts["v"].declare_queue("q1", None)
        assert q.effective("x-max-length") == 7
        # the component registers after recovery (a plugin starting): it is given what was stored
        got = []
        b.register_parameter_component("up", on_set=lambda v, n, x: got.append((v, n, x)))
        assert got == [("v", "one", {"uri": "amqp://x", "n": [1, 2]})]
        assert b.parameter("up", "v", "one")["value"] == {"uri": "amqp://x", "n": [1, 2]}
        assert b.list_parameters("up") == [b.parameter("up", "v", "one")]
        assert b.global_parameter("g") == {"value": {"k": True}, "name": "g"}
        assert b.global_parameter("internal_cluster_id")["value"] == cluster_id  # created once, kept
        assert b.parameter("vhost-limits", "v", "limits")["value"] == {"max-queues": 9}
    finally:
        b.close()

"""Users, vhosts, permissions and topic permissions in the domain (no sockets): the API the management
API and ``warrenmq ctl`` call, RabbitMQ's refusal texts, and what the definitions store keeps."""
import base64
import hashlib

import pytest

from warrenmq.broker.access import CONFIGURE, READ, WRITE
from warrenmq.broker.broker import Broker, hash_password
from warrenmq.config import BrokerConfig
from warrenmq.protocol.errors import SoftError
from warrenmq.protocol.spec import ACCESS_REFUSED
from warrenmq.store import open_storage

from .conftest import TestChannel, make_broker


@pytest.fixture
def b():
    return make_broker()


def refusal(fn, *args) -> str:
    with pytest.raises(SoftError) as info:
        fn(*args)
    assert info.value.code == ACCESS_REFUSED
    return info.value.reply_text


def test_default_user_is_an_administrator_with_all_permissions_in_the_default_vhost(b):
    assert [(u["name"], u["tags"], u["hashing_algorithm"]) for u in b.list_users()] == [
        ("guest", ["administrator"], "rabbit_password_hashing_sha256")]
    assert b.list_permissions() == [{"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}]
    assert b.check_user_password("guest", "guest")


def test_users_passwords_and_tags(b):
    b.add_user("u", "p", tags="management, policymaker")
    assert b.users["u"].tags == ["management", "policymaker"]
    assert b.check_user_password("u", "p") and not b.check_user_password("u", "q")
    assert b.authenticate(("u", "p"), None) is b.users["u"]
    b.change_password("u", "q")
    assert b.check_user_password("u", "q") and not b.check_user_password("u", "p")
    b.set_user_tags("u", ["monitoring"])
    assert b.users["u"].tags == ["monitoring"]
    b.set_user_tags("u", [])
    assert b.users["u"].tags == []
    b.clear_password("u")
    assert b.authenticate(("u", "q"), None) is None and b.authenticate(("u", ""), None) is None
    b.delete_user("u")
    assert "u" not in b.users
    with pytest.raises(KeyError):
        b.delete_user("u")
    with pytest.raises(KeyError):
        b.change_password("nobody", "x")


def test_password_hashes_as_rabbitmq_definitions_carry_them(b):
    # RabbitMQ's definitions: base64(4-byte salt + HASH(salt + password)), with the hashing module's name
    salt = b"\x01\x02\x03\x04"
    for algorithm, fn in (("rabbit_password_hashing_sha256", hashlib.sha256),
                          ("rabbit_password_hashing_sha512", hashlib.sha512),
                          ("rabbit_password_hashing_md5", hashlib.md5)):
        h = salt + fn(salt + b"secret").digest()
        b.add_user("imported", password_hash=h, hashing_algorithm=algorithm)
        assert b.check_user_password("imported", "secret") and not b.check_user_password("imported", "Secret")
        listed = [u for u in b.list_users() if u["name"] == "imported"][0]
        assert base64.b64decode(listed["password_hash"]) == h and listed["hashing_algorithm"] == algorithm
    assert hash_password("secret", salt) == salt + hashlib.sha256(salt + b"secret").digest()
    with pytest.raises(ValueError):
        b.add_user("x", password_hash=h, hashing_algorithm="rabbit_password_hashing_sha1")


def test_permissions_decide_vhost_access(b):
    b.add_user("u", "p")
    u = b.users["u"]
    assert not b.user_can_access(u, "/")  # a new user has no permissions anywhere
    b.set_permissions("u", "/", "", "", "")  # any permissions, even none of the three, give access
    assert b.user_can_access(u, "/")
    b.clear_permissions("u", "/")
    assert not b.user_can_access(u, "/") and b.list_permissions(user="u") == []
    with pytest.raises(KeyError):
        b.set_permissions("u", "nope", ".*", ".*", ".*")
    with pytest.raises(KeyError):
        b.set_permissions("nobody", "/", ".*", ".*", ".*")
    with pytest.raises(ValueError):
        b.set_permissions("u", "/", "(", ".*", ".*")


def test_check_resource_matches_like_rabbitmq(b):
    b.add_user("u", "p")
    b.set_permissions("u", "/", "^cfg", "^w-", "")
    u = b.users["u"]
    b.check_resource(u, "/", "queue", "cfg-q", CONFIGURE)
    assert refusal(b.check_resource, u, "/", "queue", "x-cfg", CONFIGURE) == \
        "ACCESS_REFUSED - access to queue 'x-cfg' in vhost '/' refused for user 'u'"
    b.check_resource(u, "/", "exchange", "w-x", WRITE)
    # an empty pattern is ^$: it allows nothing but the empty name
    assert refusal(b.check_resource, u, "/", "queue", "q", READ) == \
        "ACCESS_REFUSED - access to queue 'q' in vhost '/' refused for user 'u'"
    # the default exchange is checked as amq.default
    assert refusal(b.check_resource, u, "/", "exchange", "", WRITE) == \
        "ACCESS_REFUSED - access to exchange 'amq.default' in vhost '/' refused for user 'u'"
    b.set_permissions("u", "/", "", "^amq\\.default$", "")
    b.check_resource(u, "/", "exchange", "", WRITE)
    # re:run is a search, not a full match
    b.set_permissions("u", "/", "mid", "", "")
    b.check_resource(u, "/", "queue", "a-mid-b", CONFIGURE)
    # other vhosts: no permissions there
    b.add_vhost("v")
    assert "in vhost 'v' refused" in refusal(b.check_resource, u, "v", "queue", "mid", CONFIGURE)


def test_topic_permissions_with_variable_expansion(b):
    b.add_user("u", "p", vhosts={"/"})
    u = b.users["u"]
    b.check_topic(u, "/", "amq.topic", "anything", WRITE)  # none set: every key is allowed
    b.set_topic_permissions("u", "/", "amq.topic", "^{username}\\.", "^{vhost}-r")
    b.check_topic(u, "/", "amq.topic", "u.x", WRITE)
    assert refusal(b.check_topic, u, "/", "amq.topic", "v.x", WRITE) == \
        "ACCESS_REFUSED - access to topic 'v.x' in exchange 'amq.topic' in vhost '/' refused for user 'u'"
    b.check_topic(u, "/", "amq.topic", "/-r", READ)
    refusal(b.check_topic, u, "/", "amq.topic", "u.x", READ)
    b.check_topic(u, "/", "other", "v.x", WRITE)  # only for the exchange it names
    assert b.list_topic_permissions() == [{"user": "u", "vhost": "/", "exchange": "amq.topic",
                                           "write": "^{username}\\.", "read": "^{vhost}-r"}]
    b.clear_topic_permissions("u", "/", "amq.topic")
    b.check_topic(u, "/", "amq.topic", "v.x", WRITE)
    assert b.list_topic_permissions() == []


def test_delete_vhost_deletes_what_it_holds(b):
    b.add_vhost("v")
    b.add_user("u", "p", vhosts={"v"})
    b.set_topic_permissions("u", "v", "amq.topic", ".*", ".*")
    b.set_vhost_limits("v", {"max-queues": 5})
    ch = TestChannel(b, vhost="v")
    vh = b.vhosts["v"]
    q, _ = vh.declare_queue("q", None)
    vh.declare_exchange("x", "direct")
    vh.bind_queue(q, "x", "k", {})
    c = ch.consume(q, "c1", True, False, {})
    ch.start(c)
    b.delete_vhost("v")
    assert "v" not in b.vhosts and "v" not in b.list_vhosts()
    assert q.deleted and not q.consumers and ("cancel", c.tag) in ch.sent
    assert b.list_permissions(vhost="v") == [] and b.list_topic_permissions(vhost="v") == []
    assert "v" not in b.limits.vhost
    with pytest.raises(KeyError):
        b.delete_vhost("v")


def test_definitions_survive_a_restart(tmp_path):
    config = BrokerConfig(data_dir=str(tmp_path))
    b = Broker(config, open_storage(config))
    b.add_vhost("v")
    b.add_user("u", "p", tags=["management"])
    b.set_permissions("u", "v", "^c", "^w", "^r")
    b.set_permissions("u", "/", ".*", "", "")
    b.clear_permissions("u", "/")
    b.set_topic_permissions("u", "v", "amq.topic", "^{username}", ".*")
    b.add_user("h", password_hash=b"\x00\x00\x00\x00" + hashlib.sha512(b"\x00\x00\x00\x00pw").digest(),
               hashing_algorithm="rabbit_password_hashing_sha512")
    b.add_user("gone", "x", vhosts={"v"})
    b.delete_user("gone")
    b.add_vhost("w")
    b.add_user("w-user", "x", vhosts={"w"})
    b.delete_vhost("w")
    b.close()
    b = Broker(config, open_storage(config))
    try:
        assert set(b.users) == {"guest", "u", "h", "w-user"} and "w" not in b.vhosts
        assert b.users["u"].tags == ["management"] and b.check_user_password("u", "p")
        assert b.check_user_password("h", "pw") and b.users["h"].hashing_algorithm == "rabbit_password_hashing_sha512"
        assert b.list_permissions(user="u") == [{"user": "u", "vhost": "v", "configure": "^c", "write": "^w",
                                                 "read": "^r"}]
        assert b.list_permissions(user="w-user") == []
        assert b.list_topic_permissions() == [{"user": "u", "vhost": "v", "exchange": "amq.topic",
                                               "write": "^{username}", "read": ".*"}]
        refusal(b.check_resource, b.users["u"], "v", "queue", "x", CONFIGURE)
        b.check_resource(b.users["u"], "v", "queue", "c1", CONFIGURE)
    finally:
        b.close()


def test_a_definitions_database_of_the_previous_version_is_migrated(tmp_path):
    import json
    import sqlite3
    db = sqlite3.connect(tmp_path / "definitions.sqlite3")
    db.executescript("""
        CREATE TABLE vhosts (name TEXT PRIMARY KEY);
        CREATE TABLE users (name TEXT PRIMARY KEY, password_hash BLOB NOT NULL, tags TEXT NOT NULL);
        CREATE TABLE permissions (user TEXT, vhost TEXT, configure TEXT, write TEXT, read TEXT,
                                  PRIMARY KEY (user, vhost));""")
    db.execute("INSERT INTO vhosts VALUES ('/')")
    db.execute("INSERT INTO users VALUES ('old', ?, ?)", (hash_password("pw"), json.dumps(["management"])))
    db.execute("INSERT INTO permissions VALUES ('old', '/', '.*', '.*', '.*')")
    db.commit()
    db.close()
    b = make_broker(tmp_path)
    try:
        assert b.check_user_password("old", "pw") and b.users["old"].tags == ["management"]
        assert b.users["old"].hashing_algorithm == "rabbit_password_hashing_sha256"
        assert b.list_permissions() == [{"user": "old", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}]
        b.set_topic_permissions("old", "/", "amq.topic", "^a", "^b")
    finally:
        b.close()

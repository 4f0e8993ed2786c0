"""The pytest plugin, as a user gets it: installed through the ``pytest11`` entry point.

Each test writes a small user test suite (pika against the fixtures) and runs it
with ``pytester``: inline (a new pytest session in this process, which loads
setuptools entry points afresh) or in a subprocess (a fresh interpreter, as a
user's ``pytest`` run).
"""
from __future__ import annotations

from importlib.metadata import entry_points

import pytest

pytest_plugins = ["pytester"]

pytestmark = pytest.mark.timeout(120)

# the inner runs skip hypothesis's plugin (it costs a second of imports per run) and the cache
QUIET = ("-p", "no:hypothesispytest", "-p", "no:cacheprovider")

USER_TESTS = '''
import socket
import threading

import pika
import pytest


def test_plugin_came_from_the_entry_point(request):
    plugin = request.config.pluginmanager.get_plugin("warrenmq")  # the entry point's name
    assert plugin is not None and plugin.__name__ == "warrenmq.testing.pytest_plugin"


def test_url_reaches_a_real_broker(warrenmq_url, warrenmq_broker):
    assert warrenmq_url == warrenmq_broker.url
    conn = pika.BlockingConnection(pika.URLParameters(warrenmq_url))
    ch = conn.channel()
    ch.queue_declare("hello")
    ch.basic_publish("", "hello", b"Hello World!", pika.BasicProperties(headers={"k": "v"}))
    [msg] = warrenmq_broker.wait_for_messages("hello", 1)
    assert msg.body == b"Hello World!" and msg.headers == {"k": "v"}
    assert ch.basic_get("hello", auto_ack=True)[2] == b"Hello World!"
    conn.close()
    global FIRST_PORT
    FIRST_PORT = warrenmq_broker.port


def test_each_test_gets_its_own_broker_and_the_last_one_stopped(warrenmq_broker):
    assert warrenmq_broker.queues() == {}
    assert warrenmq_broker.port != FIRST_PORT
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", FIRST_PORT), timeout=1).close()
'''


def test_the_entry_point_is_installed():
    eps = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert eps.get("warrenmq") == "warrenmq.testing.pytest_plugin"


def test_user_suite_inline(pytester):
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=3)


def test_user_suite_in_a_fresh_interpreter(pytester):
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess(*QUIET)
    result.assert_outcomes(passed=3)


def test_fixtures_are_the_plugins(pytester):
    """With the plugin disabled by name the fixtures are unknown: they come from the entry point alone."""
    pytester.makepyfile(test_user="def test_x(warrenmq_url):\n    pass\n")
    result = pytester.runpytest("-p", "no:warrenmq", *QUIET)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'warrenmq_url' not found*"])


def test_loaded_by_module_name_when_autoload_is_off(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_user="def test_x(warrenmq_url):\n    assert warrenmq_url.startswith('amqp://')\n")
    pytester.runpytest(*QUIET).assert_outcomes(errors=1)  # not autoloaded
    pytester.runpytest("-p", "warrenmq.testing.pytest_plugin", *QUIET).assert_outcomes(passed=1)


def test_fixtures_are_listed(pytester):
    result = pytester.runpytest("--fixtures", *QUIET)
    result.stdout.fnmatch_lines(["warrenmq_broker*", "warrenmq_url*", "warrenmq_session_broker*"])


def test_session_broker_is_shared_and_reset_between_tests(pytester):
    pytester.makepyfile(test_session='''
        import pika
        import pytest
        from pika.exceptions import ConnectionClosedByBroker, StreamLostError

        STATE = {}

        def test_first(warrenmq_session_broker):
            b = warrenmq_session_broker
            conn = pika.BlockingConnection(pika.URLParameters(b.url))
            ch = conn.channel()
            ch.exchange_declare("x", "fanout")
            ch.queue_declare("left-behind", durable=True)
            ch.queue_bind("left-behind", "x")
            ch.basic_publish("x", "", b"stale")
            b.wait_for_messages("left-behind", 1)
            STATE.update(conn=conn, port=b.port, broker=b)  # the connection is left open

        def test_not_using_it():
            pass

        def test_second(warrenmq_session_broker):
            b = warrenmq_session_broker
            assert b is STATE["broker"] and b.port == STATE["port"]  # one broker for the session
            assert b.queues() == {}
            assert "x" not in b.exchanges()
            with pytest.raises((ConnectionClosedByBroker, StreamLostError)):
                STATE["conn"].process_data_events(1)  # closed by the reset
                STATE["conn"].channel()
            conn = pika.BlockingConnection(pika.URLParameters(b.url))
            ch = conn.channel()
            ch.queue_declare("left-behind")  # not durable now: the old queue is really gone
            conn.close()
    ''')
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=3)


def test_session_broker_is_reset_when_used_through_another_fixture(pytester):
    pytester.makepyfile(test_indirect='''
        import pytest

        @pytest.fixture
        def app_queue(warrenmq_session_broker):
            import pika
            conn = pika.BlockingConnection(pika.URLParameters(warrenmq_session_broker.url))
            conn.channel().queue_declare("app")
            conn.close()
            return warrenmq_session_broker

        @pytest.mark.parametrize("n", [1, 2, 3])
        def test_each_sees_only_its_own_queue(app_queue, n):
            app_queue.enqueue("app", b"m")
            assert app_queue.queue("app").messages_ready == 1  # no messages from the previous runs
    ''')
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=3)


def test_session_broker_starts_only_when_used(pytester):
    pytester.makepyfile(test_lazy='''
        import threading

        def embedded_threads():
            return [t for t in threading.enumerate() if t.name == "warrenmq-embedded"]

        def test_nothing_started():
            assert embedded_threads() == []

        def test_function_broker_only(warrenmq_broker):
            assert len(embedded_threads()) == 1
    ''')
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=2)


def test_no_clash_with_a_projects_own_broker_fixtures(pytester):
    """A project's ``broker``/``amqp_url`` fixtures (WarrenMQ's own conftest has them) keep working next to ours."""
    pytester.makeconftest('''
        import pytest
        from warrenmq.testing import EmbeddedBroker

        @pytest.fixture
        def broker():
            with EmbeddedBroker() as b:
                yield b

        @pytest.fixture
        def amqp_url(broker):
            return broker.url
    ''')
    pytester.makepyfile(test_both='''
        def test_both(broker, amqp_url, warrenmq_broker, warrenmq_url):
            assert amqp_url == broker.url and warrenmq_url == warrenmq_broker.url
            assert broker.port != warrenmq_broker.port
            broker.call(lambda: broker.broker.add_vhost("mine"))
            assert "mine" not in warrenmq_broker.call(lambda: list(warrenmq_broker.broker.vhosts))
    ''')
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=1)


def test_a_user_fixture_may_override_ours(pytester):
    pytester.makeconftest('''
        import pytest

        @pytest.fixture
        def warrenmq_url():
            return "amqp://guest:guest@rabbitmq.example:5672/%2F"
    ''')
    pytester.makepyfile(test_override='''
        def test_override(warrenmq_url):
            assert warrenmq_url.startswith("amqp://guest:guest@rabbitmq.example")
    ''')
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=1)

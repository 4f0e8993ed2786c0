"""The Prometheus endpoints against a real broker: values follow what clients do over AMQP (pika), per-object
series carry the names the management API gives the same objects, and the listener is wired as RabbitMQ's
plugin (port, paths, gzip, no authentication)."""
import json
import time
import urllib.request

import pika
import pytest

from warrenmq.testing import EmbeddedBroker

from .conftest import Scrape, fetch, gunzip, scrape


def mgmt(broker, path):
    req = urllib.request.Request(broker.management_url + path, headers={"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def connect(broker):
    return pika.BlockingConnection(pika.URLParameters(broker.url))


def test_metrics_follow_publishing_and_consuming_over_amqp(pbroker):
    before = scrape(pbroker)
    assert before.value("rabbitmq_global_messages_received_total", protocol="amqp091") == 0
    c = connect(pbroker)
    ch = c.channel()
    ch.confirm_delivery()
    ch.queue_declare("pq")
    for i in range(5):
        ch.basic_publish("", "pq", b"m%d" % i)
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish("amq.direct", "nowhere", b"returned", mandatory=True)
    ch.basic_publish("amq.direct", "nowhere", b"dropped")

    s = scrape(pbroker)
    assert s.value("rabbitmq_queue_messages_ready") == 5
    assert s.value("rabbitmq_queue_messages") == 5
    assert s.value("rabbitmq_queues") == 1
    g = {"protocol": "amqp091"}
    assert s.value("rabbitmq_global_messages_received_total", **g) == 7
    assert s.value("rabbitmq_global_messages_received_confirm_total", **g) == 7
    assert s.value("rabbitmq_global_messages_routed_total", **g) == 5
    assert s.value("rabbitmq_global_messages_unroutable_returned_total", **g) == 1
    assert s.value("rabbitmq_global_messages_unroutable_dropped_total", **g) == 1
    assert s.value("rabbitmq_global_messages_confirmed_total", **g) == 7
    assert s.value("rabbitmq_global_publishers", **g) == 1
    assert s.value("rabbitmq_channel_messages_published_total") == 7

    method, _, body = ch.basic_get("pq", auto_ack=True)
    assert body == b"m0"
    got = []
    ch.basic_qos(prefetch_count=10)
    tag = ch.basic_consume("pq", lambda c_, m, p, b: got.append(m.delivery_tag))
    deadline = time.monotonic() + 10
    while len(got) < 4 and time.monotonic() < deadline:
        c.process_data_events(0.1)
    assert len(got) == 4
    s = scrape(pbroker)
    classic = {"protocol": "amqp091", "queue_type": "rabbit_classic_queue"}
    assert s.value("rabbitmq_queue_messages_unacked") == 4
    assert s.value("rabbitmq_queue_messages_ready") == 0
    assert s.value("rabbitmq_consumers") == 1
    assert s.value("rabbitmq_global_consumers", protocol="amqp091") == 1
    assert s.value("rabbitmq_channel_messages_unacked") == 4
    assert s.value("rabbitmq_global_messages_delivered_get_auto_ack_total", **classic) == 1
    assert s.value("rabbitmq_global_messages_delivered_consume_manual_ack_total", **classic) == 4
    assert s.value("rabbitmq_global_messages_delivered_total", **classic) == 5
    assert s.value("rabbitmq_global_messages_acknowledged_total", **classic) == 0

    ch.basic_ack(got[-1], multiple=True)
    ch.basic_cancel(tag)
    ch.basic_get("pq", auto_ack=False)  # empty
    s = scrape(pbroker)
    assert s.value("rabbitmq_queue_messages") == 0
    assert s.value("rabbitmq_global_messages_acknowledged_total", **classic) == 4
    assert s.value("rabbitmq_global_messages_get_empty_total", **classic) == 1
    assert s.value("rabbitmq_channel_messages_acked_total") == 4
    assert s.value("rabbitmq_channel_get_empty_total") == 1
    assert s.value("rabbitmq_global_messages_acknowledged_total", protocol="amqp091",
                   queue_type="rabbit_quorum_queue") == 0
    c.close()

    # the global counters keep what closed channels and deleted queues counted
    c = connect(pbroker)
    c.channel().queue_delete("pq")
    c.close()
    s = scrape(pbroker)
    assert s.value("rabbitmq_global_messages_received_total", **g) == 7
    assert s.value("rabbitmq_global_messages_acknowledged_total", **classic) == 4
    assert s.value("rabbitmq_global_messages_delivered_total", **classic) == 5
    assert s.value("rabbitmq_global_publishers", **g) == 0
    assert s.value("rabbitmq_queues") == 0
    assert s.value("rabbitmq_queue_messages_ready") == 0  # aggregated over no queues: RabbitMQ's 0


def test_per_object_series_are_labelled_with_the_management_api_names(pbroker):
    c = connect(pbroker)
    pub = c.channel()
    pub.queue_declare("po-a")
    pub.queue_declare("po-b")
    for _ in range(3):
        pub.basic_publish("", "po-a", b"x")
    pub.basic_publish("", "po-b", b"y")
    cons = c.channel()
    cons.basic_qos(prefetch_count=7)
    cons.basic_consume("po-b", lambda *a: None)
    c.process_data_events(0.2)
    conns = mgmt(pbroker, "/api/connections")
    assert len(conns) == 1
    conn_name = conns[0]["name"]
    channels = {ch_["number"]: ch_["name"] for ch_ in mgmt(pbroker, "/api/channels")}

    s = scrape(pbroker, "/metrics/per-object")
    assert s.value("rabbitmq_queue_messages_ready", vhost="/", queue="po-a") == 3
    assert s.value("rabbitmq_queue_messages_unacked", vhost="/", queue="po-b") == 1
    assert s.value("rabbitmq_queue_consumers", vhost="/", queue="po-b") == 1
    assert s.value("rabbitmq_queue_consumers", vhost="/", queue="po-a") == 0
    assert s.value("rabbitmq_queue_messages_published_total", queue_vhost="/", queue="po-a") == 3
    assert {tuple(sorted(x.labels)) for x in s.find("rabbitmq_queue_messages")} == {("queue", "vhost")}
    assert s.value("rabbitmq_channel_messages_published_total", channel=channels[1]) == 4
    assert s.value("rabbitmq_channel_messages_delivered_ack_total", channel=channels[2]) == 1
    assert s.value("rabbitmq_channel_consumers", channel=channels[2]) == 1
    assert s.value("rabbitmq_consumer_prefetch", channel=channels[2]) == 7
    # RabbitMQ 3.10 labels a connection's series "channel" too
    assert s.value("rabbitmq_connection_channels", channel=conn_name) == 2
    assert s.value("rabbitmq_connection_incoming_bytes_total", channel=conn_name) > 0
    assert s.value("rabbitmq_connection_outgoing_packets_total", channel=conn_name) > 0
    assert s.value("rabbitmq_connections") == 1
    assert s.value("rabbitmq_channels") == 2
    c.close()


def test_churn_counters_count_opens_closes_declares_and_deletes(pbroker):
    s0 = scrape(pbroker)
    c = connect(pbroker)
    ch = c.channel()
    ch.queue_declare("churn")
    ch.queue_declare("churn")  # declared twice, created once
    ch.queue_declare("churn", passive=True)  # not a declare RabbitMQ counts
    c.channel().close()
    ch.queue_delete("churn")
    c.close()
    s = scrape(pbroker)

    def delta(name):
        return s.value(name) - s0.value(name)
    assert delta("rabbitmq_connections_opened_total") == 1
    assert delta("rabbitmq_connections_closed_total") == 1
    assert delta("rabbitmq_channels_opened_total") == 2
    assert delta("rabbitmq_channels_closed_total") == 2
    assert delta("rabbitmq_queues_declared_total") == 2
    assert delta("rabbitmq_queues_created_total") == 1
    assert delta("rabbitmq_queues_deleted_total") == 1
    assert s.families["rabbitmq_connections_opened"].type == "counter"


def test_node_metrics_identity_and_build_info(pbroker):
    s = scrape(pbroker)
    overview = mgmt(pbroker, "/api/overview")
    node = mgmt(pbroker, "/api/nodes")[0]
    ident = s.find("rabbitmq_identity_info")[0].labels
    assert ident["rabbitmq_node"] == overview["node"]
    assert ident["rabbitmq_cluster"] == overview["cluster_name"]
    assert ident["rabbitmq_cluster_permanent_id"].startswith("rabbitmq-cluster-id-")
    assert scrape(pbroker).find("rabbitmq_identity_info")[0].labels == ident  # stable
    assert s.find("rabbitmq_build_info")[0].labels["rabbitmq_version"] == overview["rabbitmq_version"]
    assert s.value("rabbitmq_resident_memory_limit_bytes") == node["mem_limit"]
    assert s.value("rabbitmq_disk_space_available_limit_bytes") == node["disk_free_limit"]
    assert s.value("rabbitmq_process_resident_memory_bytes") > 1 << 20
    assert s.value("rabbitmq_disk_space_available_bytes") > 0
    assert 0 < s.value("rabbitmq_process_open_fds") <= s.value("rabbitmq_process_max_fds")
    assert s.value("rabbitmq_alarms_memory_used_watermark") == 0
    assert s.value("rabbitmq_alarms_free_disk_space_watermark") == 0
    assert s.families["rabbitmq_alarms_memory_used_watermark"].type == "unknown"  # RabbitMQ's "untyped"
    assert "# TYPE rabbitmq_alarms_memory_used_watermark untyped" in s.text
    assert time.time() - 86400 < s.value("process_start_time_seconds") <= time.time()


def test_authentication_attempts_per_protocol(pbroker):
    connect(pbroker).close()
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(pika.URLParameters(pbroker.url.replace("guest:guest", "guest:wrong")))
    status, _, _ = fetch(pbroker.management_url + "/api/whoami", {"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="})
    assert status == 200
    for path in ("/metrics", "/metrics/per-object"):
        s = scrape(pbroker, path)
        assert s.value("rabbitmq_auth_attempts_total", protocol="amqp091") == 2
        assert s.value("rabbitmq_auth_attempts_succeeded_total", protocol="amqp091") == 1
        assert s.value("rabbitmq_auth_attempts_failed_total", protocol="amqp091") == 1
        assert s.value("rabbitmq_auth_attempts_succeeded_total", protocol="http") >= 1


def test_a_memory_alarm_shows(pbroker):
    from warrenmq.broker.alarms import Alarm
    pbroker.call(pbroker.broker.set_alarm, Alarm.MEMORY, True)
    try:
        assert scrape(pbroker).value("rabbitmq_alarms_memory_used_watermark") == 1
    finally:
        pbroker.call(pbroker.broker.set_alarm, Alarm.MEMORY, False)
    assert scrape(pbroker).value("rabbitmq_alarms_memory_used_watermark") == 0


def test_the_internal_cluster_id_global_parameter_is_the_permanent_id(pbroker):
    pbroker.call(pbroker.broker.set_global_parameter, "internal_cluster_id", "rabbitmq-cluster-id-imported")
    s = scrape(pbroker)
    assert s.find("rabbitmq_identity_info")[0].labels["rabbitmq_cluster_permanent_id"] == \
        "rabbitmq-cluster-id-imported"


def test_detailed_returns_the_families_asked_for_and_filters_queues_by_vhost(pbroker):
    pbroker.call(pbroker.broker.add_vhost, "other")
    pbroker.call(pbroker.broker.set_permissions, "guest", "other", ".*", ".*", ".*")
    c = connect(pbroker)
    c.channel().queue_declare("d1")
    c.close()
    c = pika.BlockingConnection(pika.URLParameters(pbroker.url.rsplit("/", 1)[0] + "/other"))
    ch = c.channel()
    ch.queue_declare("d2")
    ch.exchange_declare("dx", "fanout")
    ch.queue_bind("d2", "dx")
    c.close()

    s = scrape(pbroker, "/metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count")
    assert {x.labels["queue"] for x in s.find("rabbitmq_detailed_queue_messages_ready")} == {"d1", "d2"}
    assert s.value("rabbitmq_detailed_queue_consumers", vhost="other", queue="d2") == 0
    assert "rabbitmq_queue_messages_ready" not in s.families  # only what was asked for
    assert "rabbitmq_connections" not in s.families
    assert "rabbitmq_identity_info" in s.families and "rabbitmq_build_info" in s.families

    s = scrape(pbroker, "/metrics/detailed?family=queue_coarse_metrics&vhost=other")
    assert [x.labels["queue"] for x in s.find("rabbitmq_detailed_queue_messages")] == ["d2"]

    s = scrape(pbroker, "/metrics/detailed?family=exchange_bindings&family=exchange_names&family=vhost_status")
    assert s.value("rabbitmq_cluster_exchange_bindings", vhost="other", exchange="dx", type="fanout") == 1
    assert s.value("rabbitmq_cluster_exchange_name", vhost="other", exchange="amq.direct", type="direct") == 1
    assert not s.find("rabbitmq_cluster_exchange_name", exchange="")  # the default exchange is left out
    assert not s.find("rabbitmq_cluster_exchange_name", exchange="amq.rabbitmq.trace")  # internal
    assert s.value("rabbitmq_cluster_vhost_status", vhost="other") == 1

    s = scrape(pbroker, "/metrics/detailed")  # no family: identity only, as RabbitMQ
    assert set(s.families) == {"rabbitmq_identity_info", "rabbitmq_build_info"}


def test_gzip_when_asked_and_identity_otherwise(pbroker):
    status, headers, body = fetch(pbroker.prometheus_url + "/metrics", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    plain = gunzip(body).decode()
    assert "rabbitmq_identity_info" in Scrape(plain).families
    status, headers, body = fetch(pbroker.prometheus_url + "/metrics/per-object", {"Accept-Encoding": "gzip;q=0"})
    assert headers["Content-Encoding"] == "identity" and body.startswith(b"# HELP")
    status, headers, body = fetch(pbroker.prometheus_url + "/metrics")
    assert headers["Content-Encoding"] == "identity"


def test_unknown_paths_are_rabbitmqs_404s_and_no_credentials_are_needed(pbroker):
    status, headers, body = fetch(pbroker.prometheus_url + "/metrics/nope")
    assert (status, body) == (404, b"Unknown Registry")
    status, headers, body = fetch(pbroker.prometheus_url + "/")
    assert status == 404 and json.loads(body) == {"error": "Object Not Found", "reason": "Not Found"}
    status, _, _ = fetch(pbroker.prometheus_url + "/metrics", {"Authorization": "Basic bm9ib2R5Om5vcGU="})
    assert status == 200  # credentials are not looked at, as RabbitMQ's plugin by default


def test_embedded_broker_serves_metrics_only_when_asked():
    with EmbeddedBroker() as b:
        assert b.app.prometheus is None
        with pytest.raises(RuntimeError, match="Prometheus metrics are off"):
            b.prometheus_url
    with EmbeddedBroker(prometheus=True) as b:  # without the management API too
        assert b.app.management is None
        s = scrape(b)
        assert s.value("rabbitmq_queue_consumer_utilisation") == 0
        port = b.app.prometheus_port
        b.restart()  # the same port after a restart
        assert b.app.prometheus_port == port
        assert scrape(b).value("rabbitmq_connections") == 0


def test_async_embedded_broker_serves_metrics():
    import asyncio

    from warrenmq.testing import AsyncEmbeddedBroker

    async def main():
        async with AsyncEmbeddedBroker(prometheus=True) as b:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, fetch, b.prometheus_url + "/metrics")
    status, _, body = asyncio.run(asyncio.wait_for(main(), 30))
    assert status == 200 and b"rabbitmq_identity_info" in body

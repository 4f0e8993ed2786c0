"""Health checks, the cluster name, /api/extensions and /api/auth over HTTP, answered as RabbitMQ 3.10.8's
management plugin answers them (probed on a reference: bodies, 503s, error texts)."""
import datetime

import pika
import pytest

from warrenmq.broker.alarms import Alarm
from warrenmq.management import certificates
from warrenmq.testing import EmbeddedBroker

from .conftest import Api


def node(api):
    return api.get("/api/overview")[2]["node"]


def test_virtual_hosts_and_single_node_checks(api):
    assert api.get("/api/health/checks/virtual-hosts")[:3:2] == (200, {"status": "ok"})
    for check in ("node-is-quorum-critical", "node-is-mirror-sync-critical"):
        assert api.get(f"/api/health/checks/{check}")[:3:2] == (200, {"status": "ok",
                                                                      "reason": "single node cluster"})
    assert api.get("/api/health/checks/virtual-hosts", auth=("plain", "plainpw"))[0] == 401


def test_port_listener(api, mbroker):
    mport = int(mbroker.management_url.rsplit(":", 1)[1])
    assert api.get(f"/api/health/checks/port-listener/{mbroker.port}")[:3:2] == (
        200, {"status": "ok", "port": mbroker.port})
    assert api.get(f"/api/health/checks/port-listener/{mport}")[2] == {"status": "ok", "port": mport}
    status, _, body = api.get("/api/health/checks/port-listener/1")
    assert (status, body) == (503, {"status": "failed", "reason": "No active listener", "missing": 1,
                                    "ports": [mport, mbroker.port]})
    assert api.get("/api/health/checks/port-listener/abc")[:3:2] == (400, {"error": "bad_request",
                                                                           "reason": "Invalid port"})


def test_protocol_listener(api):
    for alias in ("amqp", "AMQP091", "amqp0-9-1", "amqp1.0"):
        assert api.get(f"/api/health/checks/protocol-listener/{alias}")[:3:2] == (
            200, {"status": "ok", "protocol": "amqp"})
    for alias in ("http", "management", "ui"):
        assert api.get(f"/api/health/checks/protocol-listener/{alias}")[2] == {"status": "ok", "protocol": "http"}
    for alias, missing in (("amqps", "amqp/ssl"), ("amqp%2Fssl", "amqp/ssl"), ("mqtt311", "mqtt"), ("foo", "foo")):
        status, _, body = api.get(f"/api/health/checks/protocol-listener/{alias}")
        assert (status, body) == (503, {"status": "failed", "reason": "No active listener", "missing": missing,
                                        "protocols": ["http", "amqp"]})


def test_deprecated_node_health_check(api, mbroker):
    n = node(api)
    assert api.get("/api/healthchecks/node")[:3:2] == (200, {"status": "ok"})
    assert api.get(f"/api/healthchecks/node/{n}")[:3:2] == (200, {"status": "ok"})
    assert api.get("/api/healthchecks/node/rabbit@nope")[:3:2] == (404, {"error": "Object Not Found",
                                                                         "reason": "Not Found"})
    mbroker.call(mbroker.broker.set_alarm, Alarm.MEMORY, True)
    try:
        assert api.get("/api/healthchecks/node")[:3:2] == (503, {
            "status": "failed", "reason": f"resource alarm(s) in effect:[{{{{resource_limit,memory,'{n}'}},[]}}]"})
    finally:
        mbroker.call(mbroker.broker.set_alarm, Alarm.MEMORY, False)


def test_certificate_expiration_without_tls_and_bad_arguments(api):
    assert api.get("/api/health/checks/certificate-expiration/1/months")[:3:2] == (200, {"status": "ok"})
    assert api.get("/api/health/checks/certificate-expiration/x/months")[:3:2] == (
        400, {"error": "bad_request", "reason": "Invalid expiration value."})
    assert api.get("/api/health/checks/certificate-expiration/1/fortnights")[:3:2] == (
        400, {"error": "bad_request", "reason": "Time unit not recognised. Supported units: days, weeks, months, years."})


def test_certificate_expiration_with_a_certificate_expiring_soon(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    expires = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(days=10)
    server = ca.issue_cert("localhost", not_after=expires)
    cert, key, cafile = tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "ca.pem"
    server.cert_chain_pems[0].write_to_path(str(cert))
    server.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(cafile))
    with EmbeddedBroker(management=True, tls_port=0, tls_certfile=str(cert), tls_keyfile=str(key),
                        tls_cafile=str(cafile)) as b:
        api = Api(b.management_url)
        assert api.get("/api/health/checks/protocol-listener/amqps")[2] == {"status": "ok",
                                                                           "protocol": "amqp/ssl"}
        assert api.get(f"/api/health/checks/port-listener/{b.app.tls_port}")[0] == 200
        assert api.get("/api/health/checks/certificate-expiration/1/weeks")[:3:2] == (200, {"status": "ok"})
        status, _, body = api.get("/api/health/checks/certificate-expiration/2/WEEKS")
        assert status == 503
        assert body == {"status": "failed", "reason": "Certificates expiring", "expired": [{
            "node": node(api), "protocol": "amqp/ssl", "interface": body["expired"][0]["interface"],
            "port": b.app.tls_port, "certfile": str(cert), "cacertfile": str(cafile),
            "certfile_expires_on": [certificates.date_text(int(expires.timestamp()))],
            "cacertfile_expires_on": []}]}
        assert api.get("/api/health/checks/certificate-expiration/1/months")[0] == 503


def test_certificate_files_that_are_not_certificates(tmp_path):
    key = tmp_path / "k.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    assert certificates.expiring(str(key), 0) == {
        "error": "The certificate file provided contains a 'PrivateKeyInfo' entry"}
    empty = tmp_path / "e.pem"
    empty.write_text("nothing")
    assert certificates.expiring(str(empty), 0) == {
        "error": "The certificate file provided does not contain any PEM entry."}
    assert certificates.expiring(None, 0) == []
    assert certificates.date_text(0) == "1970-01-01 0:00:00"


def test_cluster_name(api, mbroker):
    n = node(api)
    assert api.get("/api/cluster-name")[:3:2] == (200, {"name": n})
    assert api.put("/api/cluster-name", {"name": "renamed"}, auth=("mgmt", "mgmtpw"))[:3:2] == (
        401, {"error": "not_authorised", "reason": "Not administrator user"})
    assert api.put("/api/cluster-name", {})[:3:2] == (400, {"error": "bad_request",
                                                             "reason": "[{key_missing,name}]"})
    try:
        assert api.put("/api/cluster-name", {"name": "renamed"})[:3:2] == (204, None)
        assert api.get("/api/cluster-name")[2] == {"name": "renamed"}
        overview = api.get("/api/overview")[2]
        assert (overview["cluster_name"], overview["node"]) == ("renamed", n)
        assert {"name": "cluster_name", "value": "renamed"} in mbroker.call(
            mbroker.broker.list_global_parameters)
        c = pika.BlockingConnection(pika.URLParameters(mbroker.url))
        try:
            assert c._impl.server_properties["cluster_name"] == "renamed"
        finally:
            c.close()
    finally:
        mbroker.call(mbroker.broker.clear_global_parameter, "cluster_name")
    assert api.get("/api/cluster-name")[2] == {"name": n}


def test_extensions_and_auth(api):
    assert api.get("/api/extensions")[:3:2] == (200, [])
    assert api.get("/api/auth", auth=None)[:3:2] == (200, {"enable_uaa": False, "uaa_client_id": "",
                                                           "uaa_location": ""})
    assert api.get("/api/extensions", auth=None)[0] == 401


def test_auth_attempts(api, mbroker):
    n = node(api)
    path = f"/api/auth/attempts/{n}"
    assert api.delete(path)[0] == 204
    assert api.get(path)[:3:2] == (200, [{"protocol": "http", "auth_attempts": 1, "auth_attempts_failed": 0,
                                          "auth_attempts_succeeded": 1}])
    assert api.get("/api/overview", auth=("guest", "wrong"))[0] == 401
    assert api.get("/api/overview", auth=None)[0] == 401  # no credentials: no attempt
    pika.BlockingConnection(pika.URLParameters(mbroker.url)).close()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(pika.URLParameters(mbroker.url.replace("guest:guest", "guest:nope")))
    assert api.get(path)[2] == [
        {"protocol": "http", "auth_attempts": 3, "auth_attempts_failed": 1, "auth_attempts_succeeded": 2},
        {"protocol": "amqp091", "auth_attempts": 2, "auth_attempts_failed": 1, "auth_attempts_succeeded": 1}]
    assert api.get(path + "/source")[:3:2] == (200, [])
    assert api.get("/api/auth/attempts/rabbit@nope")[0] == 404
    assert api.get(path, auth=("mgmt", "mgmtpw"))[:3:2] == (401, {"error": "not_authorised",
                                                                  "reason": "Not monitor user"})
    assert api.get(path, auth=("mon", "monpw"))[0] == 200


def test_single_node_cluster_operations(api):
    n = node(api)
    assert api.put("/api/queues/%2F/act-q", {"durable": False})[0] == 201
    try:
        path = "/api/queues/%2F/act-q/actions"
        for action in ("sync", "cancel_sync"):
            assert api.request("POST", path, {"action": action})[:3:2] == (204, None)
        assert api.request("POST", path, {"action": "foo"})[:3:2] == (400, {"error": "bad_request",
                                                                            "reason": ["unknown", "foo"]})
        assert api.request("POST", path, {})[2] == {"error": "bad_request", "reason": "[{key_missing,action}]"}
        assert api.request("POST", "/api/queues/%2F/no-q/actions", {"action": "sync"})[0] == 404
        assert api.request("POST", path, {"action": "sync"}, auth=("mon", "monpw"))[:3:2] == (
            401, {"error": "not_authorised", "reason": "Not administrator user"})
        assert api.get(path)[0] == 405
    finally:
        api.delete("/api/queues/%2F/act-q")
    assert api.request("POST", "/api/rebalance/queues", {})[:3:2] == (204, None)
    assert api.request("POST", "/api/rebalance/queues", {}, auth=("mon", "monpw"))[0] == 401
    assert api.request("POST", f"/api/vhosts/%2F/start/{n}", {})[:3:2] == (204, None)
    assert api.request("POST", "/api/vhosts/%2F/start/rabbit@nope", {})[:3:2] == (
        400, {"error": "bad_request", "reason": "Request to node rabbit@nope failed with nodedown"})
    assert api.request("POST", f"/api/vhosts/no-vh/start/{n}", {})[:3:2] == (
        400, {"error": "bad_request", "reason": f'Request to node {n} failed with {{no_such_vhost,<<"no-vh">>}}'})


def test_plugin_listeners_and_their_tls_forms_are_listed_checked_and_their_certificates_expire(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    expires = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(days=10)
    server = ca.issue_cert("localhost", not_after=expires)
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    server.cert_chain_pems[0].write_to_path(str(cert))
    server.private_key_pem.write_to_path(str(key))
    with EmbeddedBroker(management=True, prometheus=True, stomp=True, web_stomp=True, web_mqtt=True, tls_port=0,
                        tls_certfile=str(cert), tls_keyfile=str(key)) as b:
        api = Api(b.management_url)
        app = b.app
        listeners = {(x["protocol"], x["port"]) for x in api.get("/api/overview")[2]["listeners"]}
        assert listeners == {
            ("amqp", b.port), ("amqp/ssl", app.tls_port), ("mqtt", app.mqtt_port), ("mqtt/ssl", app.mqtts_port),
            ("stomp", app.stomp_port), ("stomp/ssl", app.stomps_port), ("http/web-mqtt", app.web_mqtt_port),
            ("https/web-mqtt", app.web_mqtts_port), ("http/web-stomp", app.web_stomp_port),
            ("https/web-stomp", app.web_stomps_port), ("http/prometheus", app.prometheus_port),
            ("http", app.management_port)}
        assert len({port for _, port in listeners}) == len(listeners)
        for alias, protocol in (("mqtts", "mqtt/ssl"), ("stomp1.2", "stomp"), ("stomps", "stomp/ssl"),
                                ("web-mqtt", "http/web-mqtt"), ("webmqtt%2Ftls", "https/web-mqtt"),
                                ("web-stomp", "http/web-stomp"), ("web-stomp+ssl", "https/web-stomp")):
            assert api.get(f"/api/health/checks/protocol-listener/{alias}")[:3:2] == (
                200, {"status": "ok", "protocol": protocol}), alias
        assert api.get(f"/api/health/checks/port-listener/{app.web_stomps_port}")[0] == 200
        status, _, body = api.get("/api/health/checks/certificate-expiration/2/weeks")
        assert status == 503
        assert sorted((e["protocol"], e["port"], e["certfile"]) for e in body["expired"]) == sorted(
            (p, port, str(cert)) for p, port in listeners if p.endswith("/ssl") or p.startswith("https/"))

"""GET/POST /api/definitions over real HTTP against an embedded broker: RabbitMQ 3.10.8's own export
posted as JSON and as the management UI's form upload, its users then logging in over AMQP with their
imported passwords, and the status codes and bodies RabbitMQ 3.10.8 answers (probed on it)."""
import base64
import http.client
import json
import os
import urllib.parse

import pika
import pytest

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "definitions", "rabbitmq-3.10.8.json")
USERS = {"i12-defs-admin": "admin-secret", "i12-defs-sha512": "sha512-secret", "i12-defs-md5": "md5-secret"}


def fixture_text() -> str:
    with open(FIXTURE) as f:
        return f.read()


def raw(mbroker, method, path, body: bytes = b"", headers=None, auth=("guest", "guest")):
    """``(status, headers, body bytes)`` with http.client (no redirect following, any content type)."""
    u = urllib.parse.urlsplit(mbroker.management_url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    h = dict(headers or {})
    if auth is not None:
        h["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, r.headers, r.read()
    finally:
        c.close()


def multipart(fields: dict) -> tuple:
    boundary = "----warrenmq-test-boundary"
    out = b""
    for name, (filename, data) in fields.items():
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += (f"--{boundary}\r\nContent-Disposition: {disp}\r\n"
                + ("Content-Type: application/json\r\n" if filename else "") + "\r\n").encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def login(mbroker, user, password, vhost="i12-defs-vh"):
    port = urllib.parse.urlsplit(mbroker.url).port
    params = pika.ConnectionParameters("127.0.0.1", port, vhost, pika.PlainCredentials(user, password),
                                       connection_attempts=1)
    return pika.BlockingConnection(params)


def test_get_is_the_whole_export_for_administrators_only(api):
    status, headers, body = api.get("/api/definitions")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert list(body)[:4] == ["rabbit_version", "rabbitmq_version", "product_name", "product_version"]
    assert {"users", "vhosts", "permissions", "topic_permissions", "parameters", "global_parameters", "policies",
            "queues", "exchanges", "bindings"} <= set(body)
    assert "guest" in [u["name"] for u in body["users"]]
    assert "Content-Disposition" not in headers
    status, headers, _ = api.get("/api/definitions?download=rabbit_localhost_2026-12-5.json")
    assert status == 200 and headers["Content-Disposition"] == "attachment; filename=rabbit_localhost_2026-12-5.json"
    for path in ("/api/definitions", "/api/definitions/%2F"):
        assert api.get(path, auth=("mon", "monpw"))[::2] == (
            401, {"error": "not_authorised", "reason": "Not administrator user"})
        assert api.request("POST", path, {}, auth=("mgmt", "mgmtpw"))[::2] == (
            401, {"error": "not_authorised", "reason": "Not administrator user"})
    assert api.get("/api/definitions", auth=None)[0] == 401


def test_the_ui_download_link_passes_credentials_in_the_query(api):
    token = base64.b64encode(b"guest:guest").decode()
    status, headers, body = api.get(f"/api/definitions?download=defs.json&auth={token}", auth=None)
    assert status == 200 and headers["Content-Disposition"] == "attachment; filename=defs.json"
    assert "users" in body
    assert api.get("/api/overview?auth=" + token, auth=None)[0] == 401  # only for definitions
    bad = base64.b64encode(b"guest:wrong").decode()
    assert api.get(f"/api/definitions?auth={bad}", auth=None)[0] == 401


def test_per_vhost_get_and_an_unknown_vhost(api):
    status, _, body = api.get("/api/definitions/%2F")
    assert status == 200
    assert list(body) == ["rabbit_version", "parameters", "policies", "queues", "exchanges", "bindings"]
    assert api.get("/api/definitions/nope")[::2] == (400, {"error": "bad_request", "reason": "vhost_not_found"})
    assert api.request("POST", "/api/definitions/nope", {})[::2] == (
        404, {"error": "not_found", "reason": "vhost_not_found"})


def test_a_rabbitmq_export_posted_as_json_imports_and_its_users_log_in(api, mbroker):
    status, _, body = raw(mbroker, "POST", "/api/definitions", fixture_text().encode(),
                          {"Content-Type": "application/json"})
    assert (status, body) == (204, b"")
    for user, password in USERS.items():
        c = login(mbroker, user, password)
        assert c.is_open
        c.close()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        login(mbroker, "i12-defs-sha512", "wrong")
    # imported permissions are enforced: i12-defs-md5 may not configure anything
    c = login(mbroker, "i12-defs-md5", "md5-secret")
    ch = c.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.queue_declare("md5-own")
    assert info.value.reply_code == 403
    c.close()
    status, _, d = api.get("/api/definitions")
    assert {"i12-defs-vh", "i12-defs-empty"} <= {v["name"] for v in d["vhosts"]}
    vh = next(v for v in d["vhosts"] if v["name"] == "i12-defs-vh")
    assert vh["metadata"] == {"description": "WarrenMQ definitions fixture", "tags": ["fixture", "qa"]}
    assert {q["name"] for q in d["queues"] if q["vhost"] == "i12-defs-vh"} >= {"app.orders", "app.quorum", "app.lazy"}


def test_the_ui_form_upload_and_its_redirect(api, mbroker):
    doc = {"vhosts": [{"name": "upload-vh"}], "queues": [{"name": "uq", "vhost": "upload-vh", "durable": True,
                                                          "auto_delete": False, "arguments": {}}]}
    body, headers = multipart({"file": ("defs.json", json.dumps(doc).encode())})
    status, _, out = raw(mbroker, "POST", "/api/definitions", body, headers)
    assert (status, out) == (204, b"")
    assert api.get("/api/queues/upload-vh/uq")[0] == 200
    body, headers = multipart({"file": ("defs.json", b'{"vhosts": [{"name": "upload-vh2"}]}'),
                               "redirect": (None, b"../#/")})
    status, hdrs, _ = raw(mbroker, "POST", "/api/definitions", body, headers)
    assert status == 303 and hdrs["Location"] == "../#/"
    assert api.get("/api/vhosts/upload-vh2")[0] == 200
    for ctype in ("multipart/form-data", "multipart/form-data; boundary=xyz"):  # not a form: an empty 400
        assert raw(mbroker, "POST", "/api/definitions", b"garbage", {"Content-Type": ctype})[::2] == (400, b"")
    body, headers = multipart({"file": ("defs.json", b"{bad")})
    status, _, out = raw(mbroker, "POST", "/api/definitions", body, headers)
    assert (status, json.loads(out)) == (400, {"error": "bad_request", "reason": "failed_to_parse_json"})


def test_per_vhost_post_goes_into_that_vhost(api, mbroker):
    mbroker.call(lambda: mbroker.broker.add_vhost("pv"))
    doc = {"queues": [{"name": "pq", "durable": True, "auto_delete": False, "arguments": {"x-max-length": 3}}],
           "exchanges": [{"name": "px", "type": "direct", "durable": True, "auto_delete": False, "internal": False,
                          "arguments": {}}],
           "bindings": [{"source": "px", "destination": "pq", "destination_type": "queue", "routing_key": "k",
                         "arguments": {}}]}
    status, _, _ = api.request("POST", "/api/definitions/pv", doc)
    assert status == 204
    status, _, d = api.get("/api/definitions/pv")
    assert d["queues"] == [{"name": "pq", "durable": True, "auto_delete": False, "arguments": {"x-max-length": 3}}]
    assert d["bindings"] == [{"source": "px", "destination": "pq", "destination_type": "queue", "routing_key": "k",
                              "arguments": {}}]


@pytest.mark.parametrize("body, ctype, status, answer", [
    (b"{bad", "application/json", 400, {"error": "bad_request", "reason": "failed_to_parse_json"}),
    (b"[1, 2]", "application/json", 400, {"error": "bad_request", "reason": "failed_to_parse_json"}),
    (b"", "application/json", 204, None),
    (b"{}", "text/plain", 415, None),
    (json.dumps({"permissions": [{"user": "nobody", "vhost": "/", "configure": "", "write": "", "read": ""}]}).encode(),
     "application/json", 400, {"error": "bad_request", "reason": ["no_such_user", "nobody"]}),
    (json.dumps({"policies": [{"vhost": "/", "name": "p1", "pattern": "^x", "definition": {"bogus": 1}}]}).encode(),
     "application/json", 400, {"error": "bad_request", "reason": "Validation failed\n\n[{&lt;&lt;\"bogus\"&gt;"
                                                                 "&gt;,1}] are not recognised policy settings\n (//p1)"}),
])
def test_post_answers_as_rabbitmq_does(mbroker, body, ctype, status, answer):
    got_status, _, out = raw(mbroker, "POST", "/api/definitions", body, {"Content-Type": ctype})
    assert got_status == status
    assert (json.loads(out) if out else None) == answer


def test_other_methods_are_405(mbroker):
    for method in ("PUT", "DELETE"):
        assert raw(mbroker, method, "/api/definitions", b"{}", {"Content-Type": "application/json"})[0] == 405

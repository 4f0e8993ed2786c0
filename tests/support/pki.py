"""Certificates for the TLS listener tests (trustme): a CA, the broker's certificate for localhost and
127.0.0.1, a client certificate it issued, and a rogue CA's client certificate."""
from pathlib import Path


def make_pki(trustme, d: Path) -> dict:
    """Write the PEM files into ``d``; returns their paths by role (ca, server, server_key, client,
    client_key, rogue, rogue_key)."""
    ca, rogue = trustme.CA(), trustme.CA()
    files = {"ca": d / "ca.pem", "server": d / "server.pem", "server_key": d / "server.key",
             "client": d / "client.pem", "client_key": d / "client.key",
             "rogue": d / "rogue.pem", "rogue_key": d / "rogue.key"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    server = ca.issue_cert("localhost", "127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(files["server"]))
    server.private_key_pem.write_to_path(str(files["server_key"]))
    client = ca.issue_cert("client.test")
    client.cert_chain_pems[0].write_to_path(str(files["client"]))
    client.private_key_pem.write_to_path(str(files["client_key"]))
    bad = rogue.issue_cert("client.test")
    bad.cert_chain_pems[0].write_to_path(str(files["rogue"]))
    bad.private_key_pem.write_to_path(str(files["rogue_key"]))
    return {k: str(v) for k, v in files.items()}


def add_certificate_user(b, name: str) -> None:
    """A user of the embedded broker ``b`` with no password (a certificate login only) and every permission
    on vhost "/", made through its management API."""
    from urllib.parse import quote

    from .http import http
    q = quote(name, safe="")
    for path, body in ((f"/api/users/{q}", {"password_hash": "", "tags": ""}),
                       (f"/api/permissions/%2F/{q}", {"configure": ".*", "write": ".*", "read": ".*"})):
        status = http(b.management_url, "PUT", path, body)[0]
        assert status in (201, 204), (path, status)

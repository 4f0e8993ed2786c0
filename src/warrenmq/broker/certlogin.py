"""The user name a verified client certificate logs in as (RabbitMQ's ``ssl_cert_login``).

Theory of operation: a TLS listener with ``tls_verify_peer`` has verified the client's certificate
against ``tls_cafile``; a protocol adapter that allows certificate logins (STOMP's
``stomp_ssl_cert_login``, RabbitMQ's ``stomp.ssl_cert_login``; MQTT's ``mqtt_ssl_cert_login``, RabbitMQ's
``mqtt.ssl_cert_login``) asks :func:`peer_cert_auth_name` for the name, taken as RabbitMQ's
``rabbit_ssl:peer_cert_auth_name`` takes it, by ``ssl_cert_login_from``:

* ``distinguished_name`` (RabbitMQ's default): the subject as an RFC 4514 string, its RDNs in reverse
  order joined by ``,`` (a multi-valued RDN's parts by ``+``), attribute types by RabbitMQ's short names
  (``CN``, ``O``, ``OU``, ``C``, ``L``, ``ST``, ``DC``, ``EMAILADDRESS``, ...), values escaped as
  ``rabbit_cert_info:escape_rdn_value`` escapes them (``\\`` before ``"+,;<>\\``, before a leading space
  or ``#`` and a trailing space; bytes below 32 or from 126 up, UTF-8 ones included, as ``\\XX``);
* ``common_name``: the subject's CN values joined by ``,``.

No name (``None``) when the listener does not verify peers (RabbitMQ's ``auth_config_sane``: a
certificate nobody verified names nobody), when there is no certificate, or no CN in ``common_name``
mode.  ``peercert`` is Python's decoded form (``SSLObject.getpeercert()``: the subject as a tuple of
RDNs, each a tuple of ``(long name, value)`` pairs).
"""
from __future__ import annotations

#: Python's (OpenSSL's long) attribute names -> RabbitMQ's short ones (rabbit_cert_info:format_rdn)
SHORT_NAMES = {
    "surname": "SN", "givenName": "GIVENNAME", "initials": "INITIALS",
    "generationQualifier": "GENERATIONQUALIFIER", "commonName": "CN", "localityName": "L",
    "stateOrProvinceName": "ST", "organizationName": "O", "organizationalUnitName": "OU", "title": "TITLE",
    "countryName": "C", "serialNumber": "SERIALNUMBER", "pseudonym": "PSEUDONYM", "domainComponent": "DC",
    "emailAddress": "EMAILADDRESS", "streetAddress": "STREET", "userId": "UID",
}

MODES = ("distinguished_name", "common_name")


def escape_rdn_value(value: str) -> str:
    """``value`` escaped as RabbitMQ escapes an RDN value (see the module docstring)."""
    data = value.encode("utf-8")
    out = []
    last = len(data) - 1
    for i, c in enumerate(data):
        if i == 0 and c in b" #":
            out.append("\\" + chr(c))
        elif i == last and c == 0x20:
            out.append("\\ ")
        elif c in b'"+,;<>\\':
            out.append("\\" + chr(c))
        elif c < 32 or c >= 126:
            out.append(f"\\{c:02X}")
        else:
            out.append(chr(c))
    return "".join(out)


def distinguished_name(subject) -> str:
    rdns = ["+".join(f"{SHORT_NAMES.get(t, t)}={escape_rdn_value(v)}" for t, v in rdn) for rdn in subject]
    return ",".join(reversed(rdns))


def peer_cert_auth_name(peercert, mode: str, verified: bool) -> str | None:
    """The user name ``peercert`` logs in as, or ``None`` (see the module docstring)."""
    if not verified or not peercert:
        return None
    subject = peercert.get("subject") or ()
    if mode == "common_name":
        names = [v for rdn in subject for t, v in rdn if t == "commonName"]
        return ",".join(names) if names else None
    return distinguished_name(subject)

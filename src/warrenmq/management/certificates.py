"""When the certificates in a PEM file expire, for the certificate-expiration health check.

Theory of operation: RabbitMQ's check reads the listener's ``certfile`` and ``cacertfile``, decodes every
PEM entry and reports the certificates whose ``notAfter`` comes before the deadline.  The standard library
has no public X.509 decoder, and the broker needs no other dependency for this, so :func:`validity`
walks just enough DER to reach ``tbsCertificate.validity`` (a certificate is
``SEQUENCE { tbsCertificate SEQUENCE { [0] version?, serialNumber, signature, issuer, validity, ... } ...}``)
and reads its two times (UTCTime ``YYMMDDHHMMSSZ``, GeneralizedTime ``YYYYMMDDHHMMSSZ``).  Errors are
reported as RabbitMQ reports them: ``{"error": reason}`` in place of the list of dates.

A connection's TLS facts (:func:`tls_facts`, for ``/api/connections``): what rabbit_reader reports,
from the transport's ``ssl_object``, with Erlang's names for the protocol and the cipher suite's parts.
"""
from __future__ import annotations

import base64
import calendar
import re
import ssl
import time

_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\s+(.*?)-----END \1-----", re.S)

#: RabbitMQ names a non-certificate entry by its ASN.1 type (public_key:pem_decode)
_PEM_TYPES = {b"RSA PRIVATE KEY": "RSAPrivateKey", b"PRIVATE KEY": "PrivateKeyInfo",
              b"EC PRIVATE KEY": "ECPrivateKey", b"ENCRYPTED PRIVATE KEY": "EncryptedPrivateKeyInfo",
              b"PUBLIC KEY": "SubjectPublicKeyInfo", b"CERTIFICATE REQUEST": "CertificationRequest"}


def _tlv(der: bytes, off: int) -> tuple[int, int, int]:
    """``(tag, start of the value, end of the value)`` of the DER element at ``off``."""
    tag = der[off]
    n = der[off + 1]
    off += 2
    if n & 0x80:
        count = n & 0x7F
        n = int.from_bytes(der[off:off + count], "big")
        off += count
    if off + n > len(der):
        raise ValueError("truncated DER")
    return tag, off, off + n


def _time(tag: int, raw: bytes) -> int:
    text = raw.decode("ascii").rstrip("Z")
    if tag == 0x17:  # UTCTime: two-digit year, 1950-2049
        year = int(text[:2])
        year += 1900 if year >= 50 else 2000
        text = text[2:]
    elif tag == 0x18:  # GeneralizedTime
        year = int(text[:4])
        text = text[4:]
    else:
        raise ValueError("not a time")
    mo, d, h, mi, s = (int(text[i:i + 2]) for i in range(0, 10, 2))
    return calendar.timegm((year, mo, d, h, mi, s, 0, 0, 0))


def validity(der: bytes) -> tuple[int, int]:
    """``(notBefore, notAfter)`` of a DER certificate, as Unix times."""
    _, off, _ = _tlv(der, 0)  # Certificate
    _, off, _ = _tlv(der, off)  # tbsCertificate
    tag, start, end = _tlv(der, off)
    if tag == 0xA0:  # [0] version
        off = end
    for _ in range(3):  # serialNumber, signature, issuer
        _, _, off = _tlv(der, off)
    _, off, _ = _tlv(der, off)  # validity
    t1, s1, e1 = _tlv(der, off)
    t2, s2, e2 = _tlv(der, e1)
    return _time(t1, der[s1:e1]), _time(t2, der[s2:e2])


def date_text(t: int) -> str:
    """RabbitMQ's ``seconds_to_bin``: ``Y-MM-DD H:MM:SS`` (the hour not padded), UTC."""
    y, mo, d, h, mi, s = time.gmtime(t)[:6]
    return f"{y}-{mo:02}-{d:02} {h}:{mi:02}:{s:02}"


def expiring(path: str | None, deadline: float):
    """The expiry dates of the certificates in ``path`` that expire before ``deadline``; ``[]`` for no
    file; ``{"error": reason}`` when the file cannot be read or holds something else."""
    if not path:
        return []
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return {"error": f"{e.strerror or e}"}
    entries = _PEM.findall(data)
    if not entries:
        return {"error": "The certificate file provided does not contain any PEM entry."}
    now = time.time()
    out = []
    for kind, body in entries:
        if kind != b"CERTIFICATE":
            return {"error": f"The certificate file provided contains a '{_PEM_TYPES.get(kind, kind.decode())}' "
                             "entry"}
        try:
            not_before, not_after = validity(base64.b64decode(body))
        except (ValueError, IndexError, UnicodeDecodeError):
            return {"error": "The certificate file provided contains an invalid certificate"}
        if not_before > now:
            return {"error": "Certificate is not yet valid"}
        if not_after < deadline:
            out.append(date_text(not_after))
    return out


# --------------------------------------------------------------- a connection's TLS facts
#: RabbitMQ's (rabbit_reader's) TLS keys of a connection; null (``None``) on a connection without TLS
TLS_KEYS = ("ssl_protocol", "ssl_key_exchange", "ssl_cipher", "ssl_hash", "peer_cert_subject", "peer_cert_issuer",
            "peer_cert_validity")

#: TLS 1.3 suites (OpenSSL's names) -> Erlang's selected_cipher_suite: key exchange, cipher, mac
_TLS13 = {"TLS_AES_256_GCM_SHA384": ("any", "aes_256_gcm", "aead"),
          "TLS_AES_128_GCM_SHA256": ("any", "aes_128_gcm", "aead"),
          "TLS_AES_128_CCM_SHA256": ("any", "aes_128_ccm", "aead"),
          "TLS_AES_128_CCM_8_SHA256": ("any", "aes_128_ccm_8", "aead"),
          "TLS_CHACHA20_POLY1305_SHA256": ("any", "chacha20_poly1305", "aead")}
_KX = {"ECDHE-RSA": "ecdhe_rsa", "ECDHE-ECDSA": "ecdhe_ecdsa", "DHE-RSA": "dhe_rsa", "DHE-DSS": "dhe_dss",
       "ECDH-RSA": "ecdh_rsa", "ECDH-ECDSA": "ecdh_ecdsa"}


def cipher_suite(name: str) -> tuple[str, str, str]:
    """``(key exchange, cipher, mac)`` as Erlang's ssl names them, for an OpenSSL cipher suite name
    (``ECDHE-RSA-AES256-GCM-SHA384`` -> ``ecdhe_rsa``, ``aes_256_gcm``, ``aead``); unknown parts lower-cased."""
    if name in _TLS13:
        return _TLS13[name]
    kx = "rsa"
    rest = name
    for prefix, erl in _KX.items():
        if name.startswith(prefix + "-"):
            kx, rest = erl, name[len(prefix) + 1:]
            break
    m = re.fullmatch(r"(AES|CAMELLIA|ARIA)(128|256)(?:-(GCM|CCM8?))?-(SHA\d*)", rest)
    if m:
        algo, bits, mode, mac = m.groups()
        cipher = f"{algo.lower()}_{bits}_{(mode or 'cbc').lower().replace('ccm8', 'ccm_8')}"
        return kx, cipher, "aead" if mode else mac.lower()
    if rest == "CHACHA20-POLY1305":
        return kx, "chacha20_poly1305", "aead"
    return kx, rest.lower(), ""


def _cert_time(text: str) -> str:
    """OpenSSL's ``Dec  6 03:00:00 2026 GMT`` as RabbitMQ writes a certificate time (``2026-12-06T03:00:00Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ssl_time(text)))


def ssl_time(text: str) -> int:
    return ssl.cert_time_to_seconds(text)


def tls_facts(transport) -> dict:
    """RabbitMQ's TLS keys of a connection over ``transport`` (:data:`TLS_KEYS`): the protocol
    (``tlsv1.3``), the cipher suite's parts by Erlang's names, and the client certificate's subject and
    issuer (RFC 4514, as RabbitMQ writes them) and validity; all ``None`` without TLS, the certificate's
    ``None`` without a verified client certificate."""
    out = dict.fromkeys(TLS_KEYS)
    obj = transport.get_extra_info("ssl_object") if transport is not None else None
    if obj is None:
        return out
    from ..broker.certlogin import distinguished_name
    version = obj.version()
    out["ssl_protocol"] = version.lower() if version else None
    suite = obj.cipher()
    if suite:
        out["ssl_key_exchange"], out["ssl_cipher"], out["ssl_hash"] = cipher_suite(suite[0])
    try:
        cert = obj.getpeercert()
    except ValueError:  # the handshake is not done
        cert = None
    if cert:
        out["peer_cert_subject"] = distinguished_name(cert.get("subject", ()))
        out["peer_cert_issuer"] = distinguished_name(cert.get("issuer", ()))
        if "notBefore" in cert and "notAfter" in cert:
            out["peer_cert_validity"] = f"{_cert_time(cert['notBefore'])} - {_cert_time(cert['notAfter'])}"
    return out

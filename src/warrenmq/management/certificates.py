"""When the certificates in a PEM file expire, for the certificate-expiration health check.

Theory of operation: RabbitMQ's check reads the listener's ``certfile`` and ``cacertfile``, decodes every
PEM entry and reports the certificates whose ``notAfter`` comes before the deadline.  The standard library
has no public X.509 decoder, and the broker needs no other dependency for this, so :func:`validity`
walks just enough DER to reach ``tbsCertificate.validity`` (a certificate is
``SEQUENCE { tbsCertificate SEQUENCE { [0] version?, serialNumber, signature, issuer, validity, ... } ...}``)
and reads its two times (UTCTime ``YYMMDDHHMMSSZ``, GeneralizedTime ``YYYYMMDDHHMMSSZ``).  Errors are
reported as RabbitMQ reports them: ``{"error": reason}`` in place of the list of dates.
"""
from __future__ import annotations

import base64
import calendar
import re
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

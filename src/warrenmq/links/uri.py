"""AMQP URIs as RabbitMQ's ``amqp_uri`` reads them, for shovels and federation upstreams.

Theory of operation: :func:`parse` turns ``amqp://user:pass@host:port/vhost?query`` into a
:class:`LinkURI` or raises ValueError with RabbitMQ's words (``"foo://" not a valid URI: ...``).  A URI
without a host (``amqp://``, ``amqp:///vhost``) names *this* broker: RabbitMQ opens a direct (in-node)
connection for it, and WarrenMQ talks to its own domain API (links/local.py) instead of a socket.
The vhost is the percent-decoded path without its leading slash (``%2f`` is ``/``); no path at all
means ``/``.  Query parameters understood (RabbitMQ's names): ``heartbeat``, ``connection_timeout``
(ms), ``channel_max``, ``frame_max``, ``auth_mechanism``, and for ``amqps`` ``cacertfile``,
``certfile``, ``keyfile``, ``verify`` (``verify_peer``/``verify_none``) and
``server_name_indication`` (``disable`` or a host name); others are ignored, as RabbitMQ ignores
what it does not know.  :func:`redact` removes the password, as RabbitMQ shows URIs in statuses.
"""
from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}


@dataclass
class LinkURI:
    uri: str  # as given
    scheme: str = "amqp"
    host: str | None = None  # None: this broker (a direct connection)
    port: int = 5672
    user: str = "guest"
    password: str = "guest"
    vhost: str = "/"
    query: dict = field(default_factory=dict)

    @property
    def local(self) -> bool:
        return self.host is None

    @property
    def tls(self) -> bool:
        return self.scheme == "amqps"

    @property
    def heartbeat(self) -> int | None:
        v = self.query.get("heartbeat")
        return int(v) if v is not None and v.isdigit() else None

    @property
    def connection_timeout(self) -> float:
        v = self.query.get("connection_timeout")
        return int(v) / 1000 if v is not None and v.isdigit() else 30.0

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context the URI's options describe (``amqps`` only), as RabbitMQ's Erlang client
        reads them: with ``cacertfile`` and ``verify=verify_peer`` the server is verified, otherwise
        it is not (``verify_none``, the Erlang client's default)."""
        if not self.tls:
            return None
        q = self.query
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if q.get("verify") == "verify_peer":
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.check_hostname = q.get("server_name_indication", "") != "disable"
            if q.get("cacertfile"):
                ctx.load_verify_locations(q["cacertfile"])
            else:
                ctx.load_default_certs()
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if q.get("certfile"):
            ctx.load_cert_chain(q["certfile"], q.get("keyfile") or None)
        return ctx

    @property
    def server_hostname(self) -> str | None:
        sni = self.query.get("server_name_indication")
        if sni == "disable":
            return None
        return sni or self.host


def _invalid(uri: str, reason: str) -> ValueError:
    return ValueError(f'"{uri}" not a valid URI: {{{reason},"{uri}"}}')


def parse(uri) -> LinkURI:
    """``uri`` as a :class:`LinkURI`; ValueError with RabbitMQ's reason when it is not one."""
    if not isinstance(uri, str):
        raise ValueError(f"{erl(uri)} not a valid URI")
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise _invalid(uri, "{unable_to_parse_uri,no_scheme}")
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise _invalid(uri, f'{{unexpected_uri_scheme,"{scheme}"}}')
    rest, _, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    out = LinkURI(uri, scheme, port=DEFAULT_PORTS[scheme])
    out.query = dict(parse_qsl(query, keep_blank_values=True))
    for key in ("heartbeat", "connection_timeout", "channel_max", "frame_max"):
        v = out.query.get(key)
        if v is not None and not v.isdigit():
            raise _invalid(uri, f'{{invalid_amqp_params_parameter,{key},"{v}",[{{"{key}","{v}"}}],'
                                f'{{not_an_integer,"{v}"}}}}')
    userinfo, at, hostport = authority.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        out.user = unquote(user)
        out.password = unquote(password) if colon else ""
    if hostport.startswith("["):  # an IPv6 literal
        host, _, tail = hostport[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
    if host:
        out.host = unquote(host)
        if port:
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise _invalid(uri, "port_invalid")
            out.port = int(port)
    elif at or port:
        raise _invalid(uri, "host_required")
    if slash:
        if "/" in path:
            raise _invalid(uri, "path_invalid")
        out.vhost = unquote(path)
    return out


def redact(uri: str) -> str:
    """``uri`` without its credentials (RabbitMQ shows shovel and upstream URIs so)."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    authority, slash, tail = rest.partition("/")
    userinfo, at, hostport = authority.rpartition("@")
    if not at:
        return uri
    return f"{scheme}://{hostport}{slash}{tail}"


def erl(value) -> str:
    """``value`` as Erlang prints the JSON RabbitMQ decoded it to (``<<"text">>``, lists, numbers),
    for validation messages worded as RabbitMQ's."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '<<"' + value.replace("\\", "\\\\").replace('"', '\\"') + '">>'
    if isinstance(value, (int, float)):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ",".join(erl(v) for v in value) + "]"
    if isinstance(value, dict):
        return "[" + ",".join("{" + erl(k) + "," + erl(v) + "}" for k, v in value.items()) + "]"
    return repr(value)

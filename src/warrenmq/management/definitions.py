"""The management API's definitions endpoints: ``/api/definitions`` and ``/api/definitions/{vhost}``.

Theory of operation: RabbitMQ 3.10's ``rabbit_mgmt_wm_definitions``, over the domain's
:mod:`warrenmq.broker.definitions`.  Every method needs the administrator tag (401 ``not_authorised``
"Not administrator user" otherwise, with that spelling, as RabbitMQ answers).  ``GET`` answers the
export; ``?download=NAME`` adds ``Content-Disposition: attachment; filename=NAME`` (what the management
UI's download button asks for, which also passes the credentials as ``?auth=`` base64 because a
download link cannot send a header: the server accepts that here only).  ``POST`` takes the document
as a JSON body (``application/json``) or as the UI's form upload (``multipart/form-data`` with the
file in the ``file`` field; a ``redirect`` field answers 303 to it), applies it, and answers 204;
another content type is 415, a form that is not multipart an empty 400.  RabbitMQ's answers, probed on 3.10.8: a body that is not a JSON object
is 400 ``failed_to_parse_json``, a definition that cannot be applied 400 with RabbitMQ's reason; an
unknown vhost is 400 ``vhost_not_found`` for ``GET`` and 404 for ``POST``.
"""
from __future__ import annotations

import json
import logging

from aiohttp import web

from ..broker import definitions
from .auth import ADMINISTRATOR, has_level
from .errors import ApiError, bad_request, json_response

log = logging.getLogger("warrenmq.management")

NO_CONTENT = 204


def _admin(ctx) -> None:
    if not has_level(ctx.user, ADMINISTRATOR):
        raise ApiError(401, "not_authorised", "Not administrator user")


def _download(ctx, response: web.Response) -> web.Response:
    name = ctx.query.get("download")
    if name:
        response.headers["Content-Disposition"] = f"attachment; filename={name}"
    return response


async def get_all(ctx):
    _admin(ctx)
    return _download(ctx, json_response(definitions.export(ctx.broker)))


async def get_vhost(ctx, vhost: str):
    _admin(ctx)
    if vhost not in ctx.broker.vhosts:
        raise bad_request("vhost_not_found")
    return _download(ctx, json_response(definitions.export(ctx.broker, vhost)))


async def post_all(ctx):
    return await _post(ctx, None)


async def post_vhost(ctx, vhost: str):
    return await _post(ctx, vhost)


async def _post(ctx, vhost: str | None):
    _admin(ctx)
    request = ctx.request
    ctype = request.content_type
    redirect = None
    if ctype == "application/json":
        raw = await request.read()
    elif ctype == "multipart/form-data":
        try:
            raw, redirect = await _form(request)
        except ValueError:  # no boundary, or a body that is not multipart: RabbitMQ's empty 400
            return web.Response(status=400)
    else:
        return web.Response(status=415)
    doc = _parse(raw)
    if vhost is not None and vhost not in ctx.broker.vhosts:
        raise ApiError(404, "not_found", "vhost_not_found")
    try:
        definitions.apply(ctx.broker, doc, vhost)
    except definitions.DefinitionsError as e:
        log.error("definitions import by user '%s' failed: %s", ctx.user.name, e)
        raise bad_request(e.reason) from None
    if redirect:
        return web.Response(status=303, headers={"Location": redirect})
    return web.Response(status=NO_CONTENT)


async def _form(request) -> tuple:
    """The ``file`` and ``redirect`` fields of the management UI's upload form."""
    fields = {}
    reader = await request.multipart()
    while True:
        part = await reader.next()
        if part is None:
            break
        if part.name in ("file", "redirect") and part.name not in fields:
            fields[part.name] = await part.read(decode=True)
        else:
            await part.release()
    redirect = fields.get("redirect")
    return fields.get("file", b""), redirect.decode("utf-8", "replace") if redirect else None


def _parse(raw: bytes) -> dict:
    """The document: an empty body is an empty one, anything but a JSON object is RabbitMQ's 400."""
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if not isinstance(doc, dict):
        raise bad_request("failed_to_parse_json")
    return doc


P = None

#: (segments after /api/, {method: handler}); see dispatch.py
ROUTES = [
    (("definitions",), {"GET": get_all, "POST": post_all}),
    (("definitions", P), {"GET": get_vhost, "POST": post_vhost}),
]

"""The management API's administration endpoints: vhosts, users, permissions, topic permissions, limits, policies, operator policies, parameters, global parameters.

Theory of operation: each handler checks the tag level RabbitMQ 3.10's
``rabbit_mgmt_wm_*`` resource asks for (``is_authorized_admin``,
``is_authorized_vhost``, ``is_authorized_policies``, ...: see :func:`_admin`,
:func:`_vhost_access`, :func:`_policies`), decodes the body as RabbitMQ's
``with_decode`` does (:func:`_decode`: an empty body or ``null`` is ``{}``,
anything but an object is ``not_json``, missing mandatory keys are
``[{key_missing,K}]``) and changes the domain through the broker's API
(``add_user``, ``set_permissions``, ``set_policy``, ``set_operator_policy``,
``set_parameter``, ...), which stores every change in the definitions
database.  Status codes, JSON keys and error texts were taken from a
RabbitMQ 3.10.8 with the management plugin: 201 when a PUT creates, 204 when it
replaces, 404 ``Object Not Found`` for what does not exist, 400 with RabbitMQ's
reasons (policy validation as ``Validation failed\\n\\n...\\n``, HTML-escaped
for policies as RabbitMQ escapes them, and not for operator policies, as it
does not).

This module owns ``/api/vhosts/*``; a vhost created over the API gives its
creator full permissions in it, as RabbitMQ does.  Deleting a user or vhost
closes its connections (the broker's ``delete_user``/``delete_vhost``: 320
CONNECTION_FORCED).
"""
from __future__ import annotations

import base64
import binascii
import json
import re

from aiohttp import web

from ..broker.policy import APPLY_TO, _erl
from . import views
from .auth import ADMINISTRATOR, has_level, require, sees_all
from .errors import ApiError, bad_request, json_response, not_authorised, not_found
from .routes import CREATED, NO_CONTENT, Ctx, visible_sessions

OBJECT_REFUSED = "User not authorised to access object"
VHOST_REFUSED = "User not authorised to access virtual host"


# ------------------------------------------------------------------- helpers
def _no_content() -> web.Response:
    return web.Response(status=NO_CONTENT)


def _created(created: bool) -> web.Response:
    return web.Response(status=CREATED if created else NO_CONTENT)


def _admin(ctx: Ctx) -> None:
    require(ctx.user, ADMINISTRATOR)


def _is_admin(ctx: Ctx) -> bool:
    return has_level(ctx.user, ADMINISTRATOR)


def _can_access(ctx: Ctx, vhost: str) -> bool:
    return ctx.broker.user_can_access(ctx.user, vhost)


def _vhost_access(ctx: Ctx, vhost: str) -> None:
    """RabbitMQ's is_authorized_vhost: administrators, or users who may open the vhost (a vhost that
    does not exist passes, to be answered 404 afterwards)."""
    if vhost in ctx.broker.vhosts and not _is_admin(ctx) and not _can_access(ctx, vhost):
        raise not_authorised(VHOST_REFUSED)


def _policies(ctx: Ctx, vhost: str | None = None) -> None:
    """RabbitMQ's is_authorized_policies: administrators, or policymakers who may open the vhost."""
    if _is_admin(ctx):
        return
    if "policymaker" in ctx.user.tags and (vhost is None or vhost not in ctx.broker.vhosts
                                           or _can_access(ctx, vhost)):
        return
    raise not_authorised(OBJECT_REFUSED)


def _filter_vhosts(ctx: Ctx, items: list) -> list:
    """RabbitMQ's filter_vhost: administrators see every vhost's items, others those of vhosts they may open."""
    if _is_admin(ctx):
        return items
    return [i for i in items if _can_access(ctx, i["vhost"])]


def _visible(ctx: Ctx, items: list) -> list:
    """Items of the vhosts the user may see (monitoring: all)."""
    if sees_all(ctx.user):
        return items
    return [i for i in items if _can_access(ctx, i["vhost"])]


async def _decode(ctx: Ctx, *keys: str, nullable: tuple = ()) -> dict:
    """The body as RabbitMQ's with_decode reads it, with the mandatory ``keys`` (null counts as missing,
    but for the ``nullable`` ones, which the handler then refuses with its own text as RabbitMQ does)."""
    raw = (await ctx.request.read()).strip()
    if raw in (b"", b"null", b"undefined"):
        body = {}
    else:
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise bad_request("not_json") from None
        if isinstance(body, str):
            raise bad_request("invalid payload: the request body JSON-decoded to a string. "
                              "Is the input doubly-JSON-encoded?")
        if body is None or isinstance(body, bool):
            body = {}
        if not isinstance(body, dict):
            raise bad_request("not_json")
    missing = [k for k in keys if k not in body or (body[k] is None and k not in nullable)]
    if missing:
        raise bad_request("[" + ",".join(f"{{key_missing,{k}}}" for k in missing) + "]")
    return body


def _vhost_for_put(ctx: Ctx, vhost: str) -> None:
    if vhost not in ctx.broker.vhosts:
        raise ApiError(404, "not_found", "vhost_not_found")


def _validation_failed(reason: str, escape: bool = False) -> ApiError:
    text = f"Validation failed\n\n{reason}\n"
    if escape:  # rabbit_mgmt_format:escape_html_tags, as RabbitMQ applies it to policy errors
        text = text.replace("<", "&lt;").replace(">", "&gt;")
    return bad_request(text)


def _regex_error(pattern: str):
    """None, or ``(message, position)`` of why ``pattern`` is not a regular expression."""
    try:
        re.compile(pattern)
    except re.error as e:
        return str(e.msg), (e.pos or 0) + 1
    return None


def _tags_value(tags):
    if tags is None or isinstance(tags, str):
        return tags
    if isinstance(tags, list) and all(isinstance(t, str) for t in tags):
        return tags
    raise bad_request(f"tags must be a string or a list of strings, not {json.dumps(tags)}")


# ------------------------------------------------------------------- vhosts
def _vhost_json(ctx: Ctx, vh) -> dict:
    data = ctx.mgmt.stats.vhost(vh, views.vhost(vh, ctx.node))
    tags = list(vh.tags)
    metadata = {"description": vh.description, "tags": tags}
    if vh.default_queue_type:
        metadata["default_queue_type"] = vh.default_queue_type
    data.update({"description": vh.description, "tags": tags,
                 "default_queue_type": vh.default_queue_type or "undefined", "metadata": metadata})
    return data


async def vhosts(ctx: Ctx):
    return ctx.list([_vhost_json(ctx, vh) for vh in ctx.visible_vhosts()], ("name",))


async def vhost_get(ctx: Ctx, name: str):
    _admin(ctx)  # RabbitMQ 3.10: one vhost is for administrators, though the list is for every user
    return json_response(_vhost_json(ctx, ctx.vhost(name)))


async def vhost_put(ctx: Ctx, name: str):
    _admin(ctx)
    body = await _decode(ctx)
    tags = _tags_value(body.get("tags"))
    description = body.get("description") or ""
    if not isinstance(description, str):
        raise bad_request("description must be a string")
    tracing = body.get("tracing", False)
    if not isinstance(tracing, bool) and tracing not in ("true", "false"):  # rabbit_mgmt_util:parse_bool
        raise ApiError(400, "bad_request", ["not_boolean", tracing])
    queue_type = body.get("defaultqueuetype", body.get("default_queue_type"))
    if queue_type is not None and not isinstance(queue_type, str):
        raise bad_request("default queue type must be a string")
    b = ctx.broker
    created = name not in b.vhosts
    if created:
        if queue_type not in (None, "undefined", "classic", "quorum", "stream"):  # checked before creating
            raise ApiError(500, "Error occured while adding vhost", "invalid_queue_type")
        b.add_vhost(name)
    else:  # RabbitMQ's update changes description and tags only
        queue_type = b.vhosts[name].default_queue_type
    b.set_vhost_metadata(name, description, tags or [], queue_type)
    if created:  # RabbitMQ gives the user who created it every permission in it
        b.set_permissions(ctx.user.name, name, ".*", ".*", ".*")
    return _created(created)


async def vhost_delete(ctx: Ctx, name: str):
    _admin(ctx)
    try:
        ctx.broker.delete_vhost(name)
    except KeyError:
        raise not_found() from None
    return _no_content()


async def vhost_connections(ctx: Ctx, name: str):
    ctx.vhost(name)
    st = ctx.mgmt.stats
    return ctx.list([st.connection(s, views.connection(s, ctx.node)) for s in visible_sessions(ctx)
                     if s.vhost is not None and s.vhost.name == name], ("name",))


async def vhost_permissions(ctx: Ctx, name: str):
    _admin(ctx)
    if name not in ctx.broker.vhosts:
        raise not_found()
    return ctx.list([_perm_json(p) for p in ctx.broker.list_permissions(vhost=name)], ("user",))


async def vhost_topic_permissions(ctx: Ctx, name: str):
    _admin(ctx)
    if name not in ctx.broker.vhosts:
        raise not_found()
    return ctx.list(ctx.broker.list_topic_permissions(vhost=name), ("user",))


# ------------------------------------------------------------------- users
def _user_json(broker, user) -> dict:
    return {"name": user.name, "password_hash": base64.b64encode(user.password_hash).decode(),
            "hashing_algorithm": user.hashing_algorithm, "tags": list(user.tags),
            "limits": broker.limits.user.get(user.name, {}).copy()}


def _user(ctx: Ctx, name: str):
    user = ctx.broker.users.get(name)
    if user is None:
        raise not_found()
    return user


async def users(ctx: Ctx):
    _admin(ctx)
    b = ctx.broker
    return ctx.list([_user_json(b, u) for u in b.users.values()], ("name",))


async def users_without_permissions(ctx: Ctx):
    _admin(ctx)
    b = ctx.broker
    return ctx.list([_user_json(b, u) for u in b.users.values() if not u.permissions], ("name",))


async def users_bulk_delete(ctx: Ctx):
    _admin(ctx)
    body = await _decode(ctx, "users")
    names = body["users"]
    if not isinstance(names, list):
        raise bad_request("users must be a list of user names")
    for name in names:  # in order, as RabbitMQ: the first unknown user stops it
        if not isinstance(name, str) or name not in ctx.broker.users:
            raise bad_request(["no_such_user", name])
        ctx.broker.delete_user(name)
    return _no_content()


async def user_get(ctx: Ctx, name: str):
    _admin(ctx)
    return json_response(_user_json(ctx.broker, _user(ctx, name)))


async def user_put(ctx: Ctx, name: str):
    """RabbitMQ's put_user: ``tags`` (or the old ``administrator`` flag) required; ``password`` or
    ``password_hash`` (base64, with ``hashing_algorithm``), not both; neither: a new user gets the empty
    password (no password login), an existing one loses its password."""
    _admin(ctx)
    body = await _decode(ctx)
    b = ctx.broker
    if "tags" in body and body["tags"] is not None:
        tags = _tags_value(body["tags"])
    elif body.get("administrator") is not None:
        tags = ["administrator"] if str(body["administrator"]).lower() == "true" else []
    else:
        raise bad_request("tags_not_present")
    has_password, has_hash = "password" in body, "password_hash" in body
    if has_password and has_hash:
        raise bad_request("both_password_and_password_hash_are_provided")
    existed = name in b.users
    try:
        if has_hash:
            raw = body["password_hash"]
            try:
                password_hash = base64.b64decode(raw, validate=True) if isinstance(raw, str) else None
            except (binascii.Error, ValueError):
                password_hash = None
            if password_hash is None:
                raise bad_request(["not_base64", raw])
            b.add_user(name, tags=tags, password_hash=password_hash,
                       hashing_algorithm=body.get("hashing_algorithm") or "rabbit_password_hashing_sha256")
        elif has_password:
            password = body["password"]
            if not isinstance(password, str):
                raise bad_request("password must be a string")
            b.add_user(name, password, tags=tags)
        elif existed:
            b.set_user_tags(name, tags)
            b.clear_password(name)
        else:
            b.add_user(name, "", tags=tags)
        limits = body.get("limits")
        if isinstance(limits, dict):
            b.set_user_limits(name, limits)
    except ValueError as e:
        raise bad_request(str(e)) from None
    return _created(not existed)


async def user_delete(ctx: Ctx, name: str):
    _admin(ctx)
    _user(ctx, name)
    ctx.broker.delete_user(name)
    return _no_content()


async def user_permissions(ctx: Ctx, name: str):
    _admin(ctx)
    _user(ctx, name)
    return ctx.list(ctx.broker.list_permissions(user=name), ("vhost",))


async def user_topic_permissions(ctx: Ctx, name: str):
    _admin(ctx)
    _user(ctx, name)
    return ctx.list(ctx.broker.list_topic_permissions(user=name), ("vhost", "exchange"))


# ------------------------------------------------------------------- permissions
def _perm_json(p: dict) -> dict:
    return {"user": p["user"], "vhost": p["vhost"], "configure": p["configure"], "write": p["write"],
            "read": p["read"]}


async def permissions(ctx: Ctx):
    _admin(ctx)
    return ctx.list(ctx.broker.list_permissions(), ("vhost", "user"))


async def permission_get(ctx: Ctx, vhost: str, user: str):
    _admin(ctx)
    found = ctx.broker.list_permissions(vhost=vhost, user=user)
    if not found:
        raise not_found()
    return json_response(_perm_json(found[0]))


def _check_patterns(body: dict, keys) -> None:
    for key in keys:
        pattern = body[key]
        if not isinstance(pattern, str):
            raise bad_request(f"{key} must be a string")
        err = _regex_error(pattern)
        if err is not None:
            raise bad_request(["invalid_regexp", pattern, list(err)])


async def permission_put(ctx: Ctx, vhost: str, user: str):
    _admin(ctx)
    body = await _decode(ctx, "configure", "write", "read")
    b = ctx.broker
    if user not in b.users or vhost not in b.vhosts:
        raise bad_request("vhost_or_user_not_found")
    _check_patterns(body, ("configure", "write", "read"))
    existed = vhost in b.users[user].permissions
    b.set_permissions(user, vhost, body["configure"], body["write"], body["read"])
    return _created(not existed)


async def permission_delete(ctx: Ctx, vhost: str, user: str):
    _admin(ctx)
    b = ctx.broker
    if not b.list_permissions(vhost=vhost, user=user):
        raise not_found()
    b.clear_permissions(user, vhost)
    return _no_content()


async def topic_permissions(ctx: Ctx):
    _admin(ctx)
    return ctx.list(ctx.broker.list_topic_permissions(), ("vhost", "user"))


async def topic_permission_get(ctx: Ctx, vhost: str, user: str):
    _admin(ctx)
    found = ctx.broker.list_topic_permissions(vhost=vhost, user=user)
    if not found:
        raise not_found()
    return ctx.list(found, ("exchange",))


async def topic_permission_put(ctx: Ctx, vhost: str, user: str):
    _admin(ctx)
    body = await _decode(ctx, "exchange", "write", "read")
    b = ctx.broker
    if user not in b.users or vhost not in b.vhosts:
        raise bad_request("vhost_or_user_not_found")
    exchange = body["exchange"]
    if not isinstance(exchange, str):
        raise bad_request("exchange must be a string")
    _check_patterns(body, ("write", "read"))
    existed = (vhost, exchange) in b.users[user].topic_permissions
    b.set_topic_permissions(user, vhost, exchange, body["write"], body["read"])
    return _created(not existed)


async def topic_permission_delete(ctx: Ctx, vhost: str, user: str):
    _admin(ctx)
    b = ctx.broker
    if not b.list_topic_permissions(vhost=vhost, user=user):
        raise not_found()
    b.clear_topic_permissions(user, vhost, ctx.query.get("exchange") or None)
    return _no_content()


# ------------------------------------------------------------------- limits
def _limit_value(name: str, body: dict, allowed: tuple, terms: str, error) -> int:
    """The limit ``name`` of a PUT body, or ``error`` (RabbitMQ's: a 400 whose shape differs between vhost
    and user limits) for a limit that is not in ``allowed`` or a value that is not an integer."""
    value = body["value"]
    if name not in allowed:
        raise error(f"Unrecognised terms [{{{_erl(name)},{_erl(value)}}}] in {terms}")
    if isinstance(value, bool) or not isinstance(value, int):  # RabbitMQ: is_integer (1.5 is refused)
        raise error(f"{name} should be a number, actually was {_erl(value)}")
    return value


async def vhost_limits(ctx: Ctx, vhost: str | None = None):
    b = ctx.broker
    if vhost is not None:
        if vhost not in b.vhosts:
            raise not_found()
        ctx.vhost(vhost)
        names = [vhost]
    else:
        names = [vh.name for vh in ctx.visible_vhosts()]
    items = [{"vhost": n, "value": dict(b.limits.vhost[n])} for n in names if b.limits.vhost.get(n)]
    return ctx.list(items, ())


async def vhost_limit_put(ctx: Ctx, vhost: str, name: str):
    _admin(ctx)
    body = await _decode(ctx, "value", nullable=("value",))
    b = ctx.broker
    _vhost_for_put(ctx, vhost)
    value = _limit_value(name, body, ("max-connections", "max-queues"), "limits", _validation_failed)
    b.set_vhost_limits(vhost, {**b.vhost_limits(vhost), name: value})
    return _no_content()


async def vhost_limit_delete(ctx: Ctx, vhost: str, name: str):
    _admin(ctx)
    _vhost_for_put(ctx, vhost)
    ctx.broker.clear_vhost_limits(vhost, name)
    return _no_content()


async def user_limits(ctx: Ctx, user: str | None = None):
    b = ctx.broker
    if user is not None:
        if user not in b.users:
            raise not_found()
        names = [user]
    else:
        names = list(b.users)
    items = [{"user": n, "value": dict(b.limits.user[n])} for n in names if b.limits.user.get(n)]
    return ctx.list(items, ())


async def user_limit_put(ctx: Ctx, user: str, name: str):
    _admin(ctx)
    body = await _decode(ctx, "value", nullable=("value",))
    b = ctx.broker
    if user not in b.users:
        raise bad_request(["no_such_user", user])
    value = _limit_value(name, body, ("max-connections", "max-channels"), "user-limits", bad_request)
    b.set_user_limits(user, {**b.user_limits(user), name: value})
    return _no_content()


async def user_limit_delete(ctx: Ctx, user: str, name: str):
    _admin(ctx)
    if user not in ctx.broker.users:
        raise ApiError(404, "not_found", "user_not_found")
    ctx.broker.clear_user_limits(user, name)
    return _no_content()


# ------------------------------------------------------------------- policies
def _policy_list(ctx: Ctx, operator: bool, vhost: str | None) -> list:
    b = ctx.broker
    if vhost is not None:
        if vhost not in b.vhosts:
            raise not_found()
        _vhost_access(ctx, vhost)
    items = b.list_operator_policies(vhost) if operator else b.list_policies(vhost)
    return _filter_vhosts(ctx, items)


async def policies(ctx: Ctx, vhost: str | None = None):
    return ctx.list(_policy_list(ctx, False, vhost), ("vhost", "name"))


async def operator_policies(ctx: Ctx, vhost: str | None = None):
    return ctx.list(_policy_list(ctx, True, vhost), ("vhost", "name"))


def _find_policy(ctx: Ctx, operator: bool, vhost: str, name: str):
    vh = ctx.broker.vhosts.get(vhost)
    if vh is None:
        raise not_found()
    p = (vh.operator_policies if operator else vh.policies).by_name.get(name)
    if p is None:
        raise not_found()
    return p


async def _policy_put(ctx: Ctx, vhost: str, name: str, operator: bool):
    _vhost_for_put(ctx, vhost)
    body = await _decode(ctx, "pattern", "definition", nullable=("pattern",))
    escape = not operator
    priority = body.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, (int, float)):
        raise _validation_failed(f"priority should be a number, actually was {_erl(priority)}", escape)
    pattern = body["pattern"]
    if not isinstance(pattern, str):
        raise _validation_failed(f"pattern should be a binary but was {_erl(pattern)}", escape)
    err = _regex_error(pattern)
    if err is not None:
        raise _validation_failed(f'pattern should be regular expression but is invalid: {{"{err[0]}",{err[1]}}}',
                                 escape)
    apply_to = body.get("apply-to", "all")
    if apply_to not in APPLY_TO:
        raise _validation_failed(f"apply-to '{_erl(apply_to) if not isinstance(apply_to, str) else apply_to}' unrecognised; should be 'queues', 'exchanges' or 'all'",
                                 escape)
    definition = body["definition"]
    if not isinstance(definition, dict):
        raise _validation_failed(f"definition must be a dictionary: {_erl(definition)}", escape)
    b = ctx.broker
    vh = b.vhosts[vhost]
    existed = name in (vh.operator_policies if operator else vh.policies).by_name
    try:
        if operator:
            b.set_operator_policy(vhost, name, pattern, definition, int(priority), apply_to)
        else:
            b.set_policy(vhost, name, pattern, definition, int(priority), apply_to)
    except ValueError as e:
        raise _validation_failed(str(e), escape) from None
    return _created(not existed)


async def policy_get(ctx: Ctx, vhost: str, name: str):
    _policies(ctx, vhost)
    return json_response(_find_policy(ctx, False, vhost, name).as_dict())


async def policy_put(ctx: Ctx, vhost: str, name: str):
    _policies(ctx, vhost)
    return await _policy_put(ctx, vhost, name, False)


async def policy_delete(ctx: Ctx, vhost: str, name: str):
    _policies(ctx, vhost)
    _find_policy(ctx, False, vhost, name)
    ctx.broker.clear_policy(vhost, name)
    return _no_content()


async def operator_policy_get(ctx: Ctx, vhost: str, name: str):
    _admin(ctx)
    return json_response(_find_policy(ctx, True, vhost, name).as_dict())


async def operator_policy_put(ctx: Ctx, vhost: str, name: str):
    _admin(ctx)
    return await _policy_put(ctx, vhost, name, True)


async def operator_policy_delete(ctx: Ctx, vhost: str, name: str):
    _admin(ctx)
    _find_policy(ctx, True, vhost, name)
    ctx.broker.clear_operator_policy(vhost, name)
    return _no_content()


# ------------------------------------------------------------------- parameters
async def parameters(ctx: Ctx, component: str | None = None, vhost: str | None = None):
    _policies(ctx, vhost)
    if vhost is not None and vhost not in ctx.broker.vhosts:
        raise not_found()
    return ctx.list(_filter_vhosts(ctx, ctx.broker.list_parameters(component, vhost)), ("vhost", "name"))


async def parameters_of_component(ctx: Ctx, component: str):
    return await parameters(ctx, component)


async def parameters_in_vhost(ctx: Ctx, component: str, vhost: str):
    return await parameters(ctx, component, vhost)


async def parameter_get(ctx: Ctx, component: str, vhost: str, name: str):
    _policies(ctx, vhost)
    p = ctx.broker.parameter(component, vhost, name) if vhost in ctx.broker.vhosts else None
    if p is None:
        raise not_found()
    return json_response(p)


async def parameter_put(ctx: Ctx, component: str, vhost: str, name: str):
    _policies(ctx, vhost)
    _vhost_for_put(ctx, vhost)
    body = await _decode(ctx, "value")
    if component == "policy":
        raise bad_request("policies may not be set using this method")
    try:
        created = ctx.broker.set_parameter(component, vhost, name, body["value"], user=ctx.user)
    except ValueError as e:
        raise _validation_failed(str(e), escape=True) from None  # RabbitMQ escapes parameter errors
    return _created(created)


async def parameter_delete(ctx: Ctx, component: str, vhost: str, name: str):
    _policies(ctx, vhost)
    try:
        ctx.broker.clear_parameter(component, vhost, name)
    except KeyError:
        raise not_found() from None
    return _no_content()


def _global_parameters_level(ctx: Ctx) -> None:
    """RabbitMQ's is_authorized_global_parameters: policymakers (and administrators)."""
    if not _is_admin(ctx) and "policymaker" not in ctx.user.tags:
        raise not_authorised(OBJECT_REFUSED)


async def global_parameters(ctx: Ctx):
    _global_parameters_level(ctx)
    return ctx.list(ctx.broker.list_global_parameters(), ("name",))


async def global_parameter_get(ctx: Ctx, name: str):
    _global_parameters_level(ctx)
    p = ctx.broker.global_parameter(name)
    if p is None:
        raise not_found()
    return json_response(p)


async def global_parameter_put(ctx: Ctx, name: str):
    _global_parameters_level(ctx)
    body = await _decode(ctx, "value")
    return _created(ctx.broker.set_global_parameter(name, body["value"]))


async def global_parameter_delete(ctx: Ctx, name: str):
    _global_parameters_level(ctx)
    try:
        ctx.broker.clear_global_parameter(name)
    except KeyError:
        raise not_found() from None
    return _no_content()


# ------------------------------------------------------------------- the table
P = None  # a path parameter

#: (segments after /api/, {method: handler}); literal segments before parameters of the same length
ROUTES = [
    (("vhosts",), {"GET": vhosts}),
    (("vhosts", P), {"GET": vhost_get, "PUT": vhost_put, "DELETE": vhost_delete}),
    (("vhosts", P, "connections"), {"GET": vhost_connections}),
    (("vhosts", P, "permissions"), {"GET": vhost_permissions}),
    (("vhosts", P, "topic-permissions"), {"GET": vhost_topic_permissions}),
    (("users",), {"GET": users}),
    (("users", "without-permissions"), {"GET": users_without_permissions}),
    (("users", "bulk-delete"), {"POST": users_bulk_delete}),
    (("users", P), {"GET": user_get, "PUT": user_put, "DELETE": user_delete}),
    (("users", P, "permissions"), {"GET": user_permissions}),
    (("users", P, "topic-permissions"), {"GET": user_topic_permissions}),
    (("permissions",), {"GET": permissions}),
    (("permissions", P, P), {"GET": permission_get, "PUT": permission_put, "DELETE": permission_delete}),
    (("topic-permissions",), {"GET": topic_permissions}),
    (("topic-permissions", P, P), {"GET": topic_permission_get, "PUT": topic_permission_put,
                                   "DELETE": topic_permission_delete}),
    (("vhost-limits",), {"GET": vhost_limits}),
    (("vhost-limits", P), {"GET": vhost_limits}),
    (("vhost-limits", P, P), {"PUT": vhost_limit_put, "DELETE": vhost_limit_delete}),
    (("user-limits",), {"GET": user_limits}),
    (("user-limits", P), {"GET": user_limits}),
    (("user-limits", P, P), {"PUT": user_limit_put, "DELETE": user_limit_delete}),
    (("policies",), {"GET": policies}),
    (("policies", P), {"GET": policies}),
    (("policies", P, P), {"GET": policy_get, "PUT": policy_put, "DELETE": policy_delete}),
    (("operator-policies",), {"GET": operator_policies}),
    (("operator-policies", P), {"GET": operator_policies}),
    (("operator-policies", P, P), {"GET": operator_policy_get, "PUT": operator_policy_put,
                                   "DELETE": operator_policy_delete}),
    (("parameters",), {"GET": parameters}),
    (("parameters", P), {"GET": parameters_of_component}),
    (("parameters", P, P), {"GET": parameters_in_vhost}),
    (("parameters", P, P, P), {"GET": parameter_get, "PUT": parameter_put, "DELETE": parameter_delete}),
    (("global-parameters",), {"GET": global_parameters}),
    (("global-parameters", P), {"GET": global_parameter_get, "PUT": global_parameter_put,
                                "DELETE": global_parameter_delete}),
]

"""The management API's route table: every endpoint module's routes, matched in one place.

Theory of operation: each endpoint module (:mod:`.routes` for the core, and
one module per further area) defines ``ROUTES``, a list of ``(segments after
/api/, {method: handler})`` with ``None`` (``P``) for a path parameter; this
module concatenates them into :data:`ROUTES` and :func:`match` finds the
handler for a request's decoded path segments.  An area adds its routes by
adding its module to :data:`ROUTES` here, so no two areas edit one table.
"""
from __future__ import annotations

from . import admin, definitions, extras, federation, messaging, routes, shovels, stats_routes

#: every endpoint, in match order (the first pattern that matches wins)
ROUTES = [
    *routes.ROUTES,
    *admin.ROUTES,
    *messaging.ROUTES,
    *definitions.ROUTES,
    *stats_routes.ROUTES,
    *extras.ROUTES,
    *shovels.ROUTES,
    *federation.ROUTES,
]


def match(segments: list):
    """``(methods, params)`` for the decoded path segments after ``/api/``, or ``None``."""
    n = len(segments)
    for pattern, methods in ROUTES:
        if len(pattern) != n:
            continue
        params = []
        for lit, seg in zip(pattern, segments):
            if lit is None:
                params.append(seg)
            elif lit != seg:
                break
        else:
            return methods, params
    return None

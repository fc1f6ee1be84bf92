"""Membership of ``capabilities`` databases: members, grant, revoke, invites, redeem.

The methods are the database handle's (:mod:`orbitstore.node.access`); a static
database has no members (400 ``usage``); a right this node's identity lacks is 403
``access_denied``; a malformed did, right or scope is 400 ``invalid_value``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from orbitstore.core.entry import Entry
from orbitstore.node.access import Right
from orbitstore.server.context import context, float_param
from orbitstore.server.handles import database_info, writers_json
from orbitstore.server.responses import JSONResponse, field, json_object

# How long ``POST /v1/redeem`` waits for the invite's grant to replicate, by default.
DEFAULT_REDEEM_WAIT_S = 30.0


def members_json(members: dict[str, list[Right]]) -> list[dict[str, Any]]:
    return [
        {"did": did, "rights": [{"right": r.right, "scope": r.scope} for r in rights]}
        for did, rights in sorted(members.items())
    ]


def _op(entry: Entry) -> dict[str, Any]:
    return {"cid": str(entry.cid), "clock": entry.clock}


async def list_members(request: Request) -> Response:
    """Who holds which rights now; ``?ops=true`` adds every ACL op and whether it is
    valid (and if not, why)."""
    db = await context(request).handles.get(request.path_params["db"])
    members = db.members()
    state = db.access_state()
    out: dict[str, Any] = {"owner": state["owner"], "members": members_json(members)}
    if request.query_params.get("ops", "").lower() in ("1", "true", "yes"):
        out["ops"] = state["ops"]
    return JSONResponse(out)


async def list_writers(request: Request) -> Response:
    """Who may write, as users with their devices (linked or unlinked, since when)."""
    db = await context(request).handles.get(request.path_params["db"])
    return JSONResponse({"address": db.address, "writers": writers_json(db)})


def _right(body: dict[str, Any]) -> tuple[str, str, str | None]:
    return (
        field(body, "did", str),
        field(body, "right", str, default="write"),
        field(body, "scope", str, default=None),
    )


async def grant(request: Request) -> Response:
    """``{"did": "did:key:...", "right": "write" | "admin" | "replica", "scope":
    "prefix"?}`` (``replica``: may hold and serve a private database, without writing)."""
    api = context(request)
    db = await api.handles.get(request.path_params["db"])
    did, right, scope = _right(await json_object(request, api.config.max_body_bytes))
    entry = await db.grant(did, right, scope)
    return JSONResponse({"did": did, "right": right, "scope": scope, **_op(entry)}, 201)


async def revoke(request: Request) -> Response:
    """``{"did": ..., "right": ..., "scope": ...}``: the writer's entries concurrent with
    the revocation are retracted from every view."""
    api = context(request)
    db = await api.handles.get(request.path_params["db"])
    did, right, scope = _right(await json_object(request, api.config.max_body_bytes))
    entry = await db.revoke(did, right, scope)
    return JSONResponse({"did": did, "right": right, "scope": scope, **_op(entry)})


async def create_invite(request: Request) -> Response:
    """``{"scope": "prefix"?}``: a one-time invite link (it holds a secret: hand it over
    a private channel)."""
    api = context(request)
    db = await api.handles.get(request.path_params["db"])
    body = await json_object(request, api.config.max_body_bytes)
    link = await db.invite(field(body, "scope", str, default=None))
    return JSONResponse({"link": link}, 201)


async def revoke_invite(request: Request) -> Response:
    """``{"link": ...}``: an unused invite grants nothing once this is known."""
    api = context(request)
    db = await api.handles.get(request.path_params["db"])
    link = field(await json_object(request, api.config.max_body_bytes), "link", str)
    return JSONResponse(_op(await db.revoke_invite(link)))


async def redeem(request: Request) -> Response:
    """``{"link": ..., "name": ...}``: open the invite's database (fetching it from
    peers) and redeem the invite for this node's identity, waiting up to ``?timeout=``
    seconds for the invite's grant to replicate here; the database is named here
    ``name`` (optional; default its creator's name if free). Its info, with
    ``local_name`` (null: not named)."""
    api = context(request)
    body = await json_object(request, api.config.max_body_bytes)
    link = field(body, "link", str)
    name = field(body, "name", str, default=None)
    timeout = float_param(request.query_params, "timeout", default=DEFAULT_REDEEM_WAIT_S)
    db = await api.node.redeem(link, timeout=timeout, name=name)
    api.handles.remember(db.address, db)
    local = min((n for n, a in api.node.databases().items() if a == db.address), default=None)
    return JSONResponse({**database_info(db), "local_name": local})


def routes() -> list[BaseRoute]:
    db = "/v1/databases/{db}"
    return [
        Route(db + "/members", list_members, methods=["GET"]),
        Route(db + "/writers", list_writers, methods=["GET"]),
        Route(db + "/members", grant, methods=["POST"]),
        Route(db + "/members/revoke", revoke, methods=["POST"]),
        Route(db + "/invites", create_invite, methods=["POST"]),
        Route(db + "/invites/revoke", revoke_invite, methods=["POST"]),
        Route("/v1/redeem", redeem, methods=["POST"]),
    ]

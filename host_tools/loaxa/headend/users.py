"""The users page (admin): who may log in, with which role, who added them and
when; add a user or change a password or role, remove one, and lift a login
lockout (docs/headend.md, "Users"). The same store calls as `loaxa headend
user`; every change is audited, and a changed password or role ends that
user's sessions."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ..errors import LoaxaError
from .roles import ROLES, Role
from .service import Actor, Headend


class UserSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    password: str = Field(min_length=8, max_length=256)


def users(he: Headend, actor: Actor) -> list[dict]:
    he._check(actor, "admin", "users", {})
    return [{**u, "created_at": datetime.fromtimestamp(u["created_at"], he.tz).isoformat(
        timespec="minutes")} for u in he.store.users()]


def set_user(he: Headend, actor: Actor, name: str, body: UserSet, token: str = "") -> dict:
    """token: the caller's session, which outlives a change of their own password
    (their other sessions end)."""
    detail = {"user": name, "role": body.role}
    he._check(actor, "admin", "user.set", detail)
    if name == actor[0] and body.role != "admin":
        raise he._refuse(actor, "user.set", detail, "an admin cannot take their own admin "
                         "role away", "another admin can")
    try:
        he.store.add_user(name, body.password, body.role, actor[0],
                          keep=token if name == actor[0] else "")
    except LoaxaError as e:
        raise he._refuse(actor, "user.set", detail, e.msg, e.hint) from None
    return {"user": name, "role": body.role}


def remove_user(he: Headend, actor: Actor, name: str) -> dict:
    detail = {"user": name}
    he._check(actor, "admin", "user.remove", detail)
    if name == actor[0]:
        raise he._refuse(actor, "user.remove", detail, "an admin cannot remove themselves")
    try:
        he.store.remove_user(name, actor[0])
    except LoaxaError as e:
        raise he._refuse(actor, "user.remove", detail, e.msg, e.hint) from None
    return {"user": name, "state": "removed"}


def router(he: Headend) -> APIRouter:
    """The users page and its routes (admin)."""
    from . import models as m
    from .app import actor, token_of
    from .web import page

    r = APIRouter(tags=["users"])

    @r.get("/api/users", response_model=list[m.User])
    def list_users(request: Request) -> list[dict]:
        """Users, their role, who added them and when (admin)."""
        return users(he, actor(request))

    @r.put("/api/users/{name}", response_model=m.UserState, response_model_exclude_unset=True)
    def put_user(name: str, body: UserSet, request: Request) -> dict:
        """Add a user, or set a user's password and role (admin); audited."""
        return set_user(he, actor(request), name, body, token_of(request))

    @r.delete("/api/users/{name}", response_model=m.UserState, response_model_exclude_unset=True)
    def delete_user(name: str, request: Request) -> dict:
        return remove_user(he, actor(request), name)

    @r.get("/users", response_class=HTMLResponse, include_in_schema=False)
    def users_page(request: Request) -> Response:
        return page(request, "users.html", "users",
                    lambda who: {"rows": users(he, who), "roles": ROLES})

    return r

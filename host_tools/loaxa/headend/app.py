"""The head-end's HTTP API (FastAPI; its OpenAPI description at /openapi.json,
browsable at /docs, both for logged-in users). Thin: each route checks the
session and calls the one Headend method; a LoaxaError is a 400 with the
sentence, a role refusal a 403, no session a 401, a body that does not fit its
model a 422 naming the field, too many failed logins a 429 with Retry-After.
Every response carries the security headers (SECURITY_HEADERS)."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import MutableHeaders

from ..errors import LoaxaError
from . import models as m
from .guard import LoginGuard, Refused
from .service import Actor, Denied, Headend

COOKIE = "loaxa_session"
# The pages' scripts and styles are files of /static: nothing inline runs.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",  # browsers without frame-ancestors
}


class SecurityHeaders:
    """ASGI middleware: the headers on every response, a route's own CSP kept
    (/docs). Plain ASGI, so the live-update stream passes through unbuffered."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                h = MutableHeaders(scope=msg)
                for k, v in SECURITY_HEADERS.items():
                    h.setdefault(k, v)
            await send(msg)
        await self.app(scope, receive, send_with_headers)


class Throttled(Exception):
    def __init__(self, refused: Refused):
        self.refused = refused


def throttled_error(r: Refused) -> dict:
    if r.why == "locked":
        return {"error": f"locked out after too many failed logins, for {r.retry_after} s more",
                "hint": "an admin can lift it: DELETE /api/lockouts/NAME or "
                        "`loaxa headend user NAME --unlock`"}
    if r.why == "busy":
        return {"error": "too many logins at once", "hint": "try again in a second"}
    return {"error": f"too many failed logins from this address; try again in "
            f"{r.retry_after} s"}


def client_addr(request: Request) -> str:
    return request.client.host if request.client else ""


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    """HttpOnly, SameSite=Strict, and Secure when served over TLS."""
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Login(Strict):
    user: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class Broadcast(Strict):
    file: str = Field(min_length=1, max_length=512,
                      description="a file of the media folder, or a live source to relay: "
                      "a station's URL (http, https, rtp, rtsp, srt...) or a microphone "
                      "(alsa:DEVICE, pulse:DEVICE)")
    zones: list[str] | None = Field(None, description="only these zones (default: all)")
    priority: m.BroadcastPriority = "normal"
    title: str = Field("", max_length=80)
    at: datetime | None = Field(None, description="broadcast then instead of now (ISO 8601; "
                                "without an offset, the commune's time)")


class Emergency(Strict):
    action: Literal["start", "stop"]
    file: str | None = Field(None, max_length=128, description="default: a siren")
    title: str = Field("", max_length=80)


class Rules(Strict):
    text: str = Field(min_length=1, max_length=200_000, description="the rules file (TOML)")
    name: str = Field("rules.toml", max_length=128)


class NotLoggedIn(Exception):
    pass


def actor(request: Request) -> Actor:
    """The session's (user, role): the cookie the login set, or a bearer token."""
    token = token_of(request)
    who = request.app.state.he.session(token)
    if who is None:
        raise NotLoggedIn()
    return who


def token_of(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else \
        request.cookies.get(COOKIE, "")


Who = Annotated[Actor, Depends(actor)]


def _he(request: Request) -> Headend:
    return request.app.state.he  # type: ignore[no-any-return]


He = Annotated[Headend, Depends(_he)]

# The API's routes, one router per area (FastAPI's "bigger applications" layout);
# each declares what it answers (models.py), so /openapi.json describes it.
session = APIRouter(prefix="/api", tags=["session"])
nodes = APIRouter(prefix="/api", tags=["nodes"])
broadcasts = APIRouter(prefix="/api", tags=["broadcasts"])
rules = APIRouter(prefix="/api", tags=["rules"])
reports = APIRouter(prefix="/api", tags=["reports"])
admin = APIRouter(prefix="/api", tags=["admin"])


@session.post("/login", response_model=m.Session)
async def login(body: Login, request: Request, response: Response) -> dict:
    got = await request.app.state.guard.login(body.user, body.password, client_addr(request))
    if isinstance(got, Refused):
        if got.why == "wrong":
            raise NotLoggedIn()
        raise Throttled(got)
    token, role = got
    set_session_cookie(request, response, token)
    return {"user": body.user, "role": role, "token": token}


@session.post("/logout", response_model=m.LoggedOut)
def logout(request: Request, response: Response, who: Who, he: He) -> dict:
    he.logout(token_of(request))
    response.delete_cookie(COOKIE)
    return {"user": who[0]}


@nodes.get("/nodes", response_model=list[m.Node])
def list_nodes(who: Who, he: He) -> list[dict]:
    return he.nodes(who)


@broadcasts.post("/broadcast", response_model=m.Sent)
def broadcast(body: Broadcast, who: Who, he: He) -> dict:
    return he.broadcast(who, body.file, body.zones, body.priority, body.title, body.at)


@broadcasts.post("/broadcast/{bid}/stop", response_model=m.State)
def stop_broadcast(bid: int, who: Who, he: He) -> dict:
    return he.stop_broadcast(who, bid)


@broadcasts.get("/live", response_model=list[m.Relay])
def live(who: Who, he: He) -> list[dict]:
    return he.live(who)


@broadcasts.get("/scheduled", response_model=list[m.Scheduled])
def scheduled(who: Who, he: He, limit: int = 100) -> list[dict]:
    return he.scheduled(who, limit)


@broadcasts.delete("/scheduled/{sid}", response_model=m.State)
def cancel(sid: int, who: Who, he: He) -> dict:
    return he.cancel(who, sid)


@broadcasts.post("/emergency", response_model=m.Sent)
def emergency(body: Emergency, who: Who, he: He) -> dict:
    return he.emergency(who, body.action, body.file, body.title)


@rules.post("/rules", response_model=m.Sent)
def push_rules(body: Rules, who: Who, he: He) -> dict:
    return he.push_rules(who, body.text, body.name)


@rules.post("/rules/check", response_model=m.RulesCheck)
def check_rules(body: Rules, who: Who, he: He) -> dict:
    return he.check_rules(who, body.text, body.name)


@rules.get("/rules", response_model=m.RulesInForce)
def rules_in_force(who: Who, he: He) -> dict:
    return he.rules_in_force(who)


@reports.get("/report", response_model=m.Report, response_model_by_alias=True,
             responses={200: {"content": {"text/csv": {}}}})
def report(who: Who, he: He, start: Annotated[date, Query(alias="from")],
           end: Annotated[date, Query(alias="to")],
           format: Literal["json", "csv"] = "json") -> Any:
    rep = he.report(who, start, end)
    if format == "csv":
        return PlainTextResponse(he.report_csv(rep), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="loaxa-{start}-{end}.csv"'})
    return rep


@admin.get("/audit", response_model=list[m.AuditEntry])
def audit(who: Who, he: He, limit: int = 100) -> list[dict]:
    return he.audit_log(who, limit)


@admin.get("/lockouts", response_model=list[m.Lockout])
def lockouts(who: Who, he: He) -> list[dict]:
    return he.lockouts(who)


@admin.delete("/lockouts/{user}", response_model=m.Unlocked)
def unlock(user: str, who: Who, he: He) -> dict:
    return he.unlock(who, user)


def create_app(he: Headend, lifespan: Any = None) -> FastAPI:
    """The app around he; lifespan: what serve runs on the app's loop while it
    serves (server.Serving; tests bring their own broker and controller)."""
    app = FastAPI(title="loaxa head-end", version="1", lifespan=lifespan,
                  description="The commune head-end: nodes, broadcasts, emergencies, rules "
                  "and reports (docs/headend.md).",
                  docs_url=None, redoc_url=None, openapi_url=None)  # below, for users only
    app.add_middleware(SecurityHeaders)

    app.state.he = he
    app.state.guard = LoginGuard(he.store)

    @app.exception_handler(Throttled)
    async def _429(request: Request, exc: Throttled) -> JSONResponse:
        return JSONResponse(throttled_error(exc.refused), 429,
                            headers={"Retry-After": str(exc.refused.retry_after)})

    @app.exception_handler(NotLoggedIn)
    async def _401(request: Request, exc: NotLoggedIn) -> JSONResponse:
        return JSONResponse({"error": "not logged in", "hint": "POST /api/login"}, 401)

    @app.exception_handler(Denied)
    async def _403(request: Request, exc: Denied) -> JSONResponse:
        return JSONResponse({"error": exc.msg}, 403)

    @app.exception_handler(LoaxaError)
    async def _400(request: Request, exc: LoaxaError) -> JSONResponse:
        return JSONResponse({"error": exc.msg, "hint": exc.hint}, 400)

    @app.exception_handler(RequestValidationError)
    async def _422(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = ["/".join(str(p) for p in e["loc"][1:]) + ": " + e["msg"] for e in exc.errors()]
        return JSONResponse({"error": "bad input: " + "; ".join(errs)}, 422)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(who: Who) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def docs(who: Who) -> HTMLResponse:
        page = get_swagger_ui_html(openapi_url="/openapi.json", title=app.title)
        text = bytes(page.body).decode()
        hashes = " ".join("'sha256-" + base64.b64encode(hashlib.sha256(
            m.encode()).digest()).decode() + "'" for m in re.findall(
                r"<script>(.*?)</script>", text, re.S))
        cdn = "https://cdn.jsdelivr.net"  # Swagger UI's own files
        page.headers["content-security-policy"] = (
            f"default-src 'self'; script-src {cdn} {hashes}; style-src {cdn}; "
            "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
        return page

    for router in (session, nodes, broadcasts, rules, reports, admin):
        app.include_router(router)

    from fastapi.staticfiles import StaticFiles

    from . import alerts, clusters, media, schedule, tts, users, web

    # the pages and the later areas, each its router; what they share is on app.state
    app.state.library = library = media.Library(he)
    app.state.alerts = watch = alerts.Alerts(he)
    for router in (web.router(he), media.router(he, library), tts.router(he, library),
                   alerts.router(watch), schedule.router(he), clusters.router(he),
                   users.router(he)):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=Path(__file__).with_name("static")),
              name="static")
    return app

"""The head-end's HTTP API (FastAPI; its OpenAPI description at /openapi.json,
browsable at /docs). Thin: each route checks the session and calls the one
Headend method; a LoaxaError is a 400 with the sentence, a role refusal a 403,
no session a 401, a body that does not fit its model a 422 naming the field."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ..errors import LoaxaError
from .service import Actor, Denied, Headend

COOKIE = "loaxa_session"


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
    priority: Literal["test", "normal", "priority"] = "normal"
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
    who = request.app.state.he.store.session(token) if token else None
    if who is None:
        raise NotLoggedIn()
    return who


def token_of(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else \
        request.cookies.get(COOKIE, "")


Who = Annotated[Actor, Depends(actor)]


def create_app(he: Headend) -> FastAPI:
    app = FastAPI(title="loaxa head-end", version="1",
                  description="The commune head-end: nodes, broadcasts, emergencies, rules "
                  "and reports (docs/headend.md).")

    app.state.he = he

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

    @app.post("/api/login")
    def login(body: Login, response: Response) -> dict:
        got = he.store.login(body.user, body.password)
        if got is None:
            raise NotLoggedIn()
        token, role = got
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return {"user": body.user, "role": role, "token": token}

    @app.post("/api/logout")
    def logout(request: Request, response: Response, who: Who) -> dict:
        he.store.logout(token_of(request))
        response.delete_cookie(COOKIE)
        return {"user": who[0]}

    @app.get("/api/nodes")
    def nodes(who: Who) -> list[dict]:
        return he.nodes(who)

    @app.post("/api/broadcast")
    def broadcast(body: Broadcast, who: Who) -> dict:
        return he.broadcast(who, body.file, body.zones, body.priority, body.title, body.at)

    @app.post("/api/broadcast/{bid}/stop")
    def stop_broadcast(bid: int, who: Who) -> dict:
        return he.stop_broadcast(who, bid)

    @app.get("/api/live")
    def live(who: Who) -> list[dict]:
        return he.live(who)

    @app.get("/api/scheduled")
    def scheduled(who: Who, limit: int = 100) -> list[dict]:
        return he.scheduled(who, limit)

    @app.delete("/api/scheduled/{sid}")
    def cancel(sid: int, who: Who) -> dict:
        return he.cancel(who, sid)

    @app.post("/api/emergency")
    def emergency(body: Emergency, who: Who) -> dict:
        return he.emergency(who, body.action, body.file, body.title)

    @app.post("/api/rules")
    def push_rules(body: Rules, who: Who) -> dict:
        return he.push_rules(who, body.text, body.name)

    @app.post("/api/rules/check")
    def check_rules(body: Rules, who: Who) -> dict:
        return he.check_rules(who, body.text, body.name)

    @app.get("/api/rules")
    def rules_in_force(who: Who) -> dict:
        return he.rules_in_force(who)

    @app.get("/api/report", response_model=None)
    def report(who: Who, start: Annotated[date, Query(alias="from")],
               end: Annotated[date, Query(alias="to")],
               format: Literal["json", "csv"] = "json") -> dict | PlainTextResponse:
        rep = he.report(who, start, end)
        if format == "csv":
            return PlainTextResponse(he.report_csv(rep), media_type="text/csv", headers={
                "Content-Disposition": f'attachment; filename="loaxa-{start}-{end}.csv"'})
        return rep

    @app.get("/api/audit")
    def audit(who: Who, limit: int = 100) -> list[dict]:
        return he.audit_log(who, limit)

    from fastapi.staticfiles import StaticFiles

    from .alerts import add_alert_routes
    from .media import add_media_routes
    from .schedule import add_schedule_routes
    from .tts import add_tts_routes
    from .web import add_web

    add_web(app, he)
    add_media_routes(app, he)
    add_tts_routes(app, he)
    add_alert_routes(app, he)
    add_schedule_routes(app, he)
    app.mount("/static", StaticFiles(directory=Path(__file__).with_name("static")),
              name="static")
    return app

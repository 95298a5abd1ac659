"""The operator's web page: server-rendered (Jinja), Vietnamese unless the
browser asks for English first (?lang= overrides), the node table kept live
by server-sent events carrying the re-rendered rows (docs/headend.md)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime
from pathlib import Path

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from loaxa_node.control.protocol import BROADCAST_PRIORITIES

from ..errors import LoaxaError
from ..i18n import t_in
from .app import COOKIE, NotLoggedIn, actor, client_addr, set_session_cookie, token_of
from .guard import Refused
from .roles import allowed
from .service import Actor, Denied, Headend

ENV = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                  autoescape=select_autoescape())
POLL_S = 1.0  # how often the stream looks for news in the store
SCHEDULED_ROWS = 20  # the page shows the latest; the API and CLI give all


def page_lang(request: Request) -> str:
    q = request.query_params.get("lang")
    if q in ("vi", "en"):
        return q
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()
        if code.startswith("vi"):
            return "vi"
        if code.startswith("en"):
            return "en"
    return "vi"


def _globals(code: str) -> dict:
    """What every template uses: the language's texts and the table's column labels
    (the phone layout shows each value under its label)."""
    def ago(ts: float | None) -> str:
        return "-" if ts is None else t_in(code, "headend.ago", s=int(time.time() - ts))

    def state(s: str) -> str:
        return t_in(code, "web.state." + s) if s in ("online", "offline") else \
            t_in(code, "web.state.unknown")
    return {"_": lambda key, **kw: t_in(code, key, **kw), "ago": ago, "state": state,
            "priorities": BROADCAST_PRIORITIES[::-1],  # a broadcast's, highest first
            "lang": code, "cols": t_in(code, "web.cols").split("|")}


def rows(he: Headend, who: tuple[str, str], code: str, brief: bool = False) -> str:
    """The node table's rows: every column, or (brief: the overview's) the
    cluster, its zones, its state and what it plays."""
    tpl = ENV.get_template("row_brief.html" if brief else "row.html")
    return "".join(tpl.render(n=n, **_globals(code)) for n in he.nodes(who))


def node_map(nodes: list[dict]) -> dict:
    """The nodes placed by the location their status reports ("lat,lon" in degrees):
    points in a 100 x 60 box (north up, east right, equal distances equal on both
    axes), and the ids of the nodes without a readable location."""
    at, missing = {}, []
    for n in nodes:
        try:
            lat, lon = (float(v) for v in ((n["status"] or {}).get("location") or "").split(","))
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise ValueError
            at[n["node_id"]] = (lat, lon, n["state"])
        except ValueError:
            missing.append(n["node_id"])
    points = []
    if at:
        lats, lons = [v[0] for v in at.values()], [v[1] for v in at.values()]
        k = math.cos(math.radians(sum(lats) / len(lats)))  # a degree east is shorter
        span = max(max(lats) - min(lats), (max(lons) - min(lons)) * k, 0.002)
        scale = 48 / span  # 6 units of margin all round the 60 high box
        mid_x = (max(lons) + min(lons)) / 2 * k
        mid_y = (max(lats) + min(lats)) / 2
        points = [{"id": nid, "state": st, "x": round(50 + (lon * k - mid_x) * scale, 2),
                   "y": round(30 - (lat - mid_y) * scale, 2)}
                  for nid, (lat, lon, st) in sorted(at.items())]
    return {"points": points, "missing": missing}


def page(request: Request, template: str, name: str,
         data: Callable[[Actor], dict]) -> Response:
    """A page of the navigation (name: its entry) for the one logged in, with
    what base.html and nav.html use (the user, the role's rights, the alert
    banner's texts) and data(actor); one not logged in goes to the login form,
    one whose role may not see it gets why."""
    code = page_lang(request)
    try:
        who = actor(request)
        extra = data(who)
    except NotLoggedIn:
        return RedirectResponse(f"/?lang={code}", 303)
    except Denied as e:
        return HTMLResponse(e.msg, 403)
    return HTMLResponse(ENV.get_template(template).render(
        user=who[0], role=who[1], page=name, can_operate=allowed(who[1], "operator"),
        can_admin=allowed(who[1], "admin"), **_globals(code), **extra))


def router(he: Headend) -> APIRouter:
    """The pages, their forms and the live-update stream."""
    r = APIRouter()


    @r.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request) -> Response:
        """The overview: the clusters online at a glance, what each plays now, the
        next scheduled broadcasts; the login form to one not logged in."""
        try:
            actor(request)
        except NotLoggedIn:
            return HTMLResponse(ENV.get_template("login.html").render(
                user=None, bad=request.query_params.get("bad"), **_globals(page_lang(request))))

        def data(who: Actor) -> dict:
            return {"nodes": he.nodes(who), "pending": [
                s for s in he.scheduled(who, SCHEDULED_ROWS) if s["state"] == "pending"][::-1]}
        return page(request, "index.html", "overview", data)

    @r.get("/clusters", response_class=HTMLResponse, include_in_schema=False)
    def clusters(request: Request) -> Response:
        """Every loudspeaker cluster (a link to its page) and the map."""
        def data(who: Actor) -> dict:
            nodes = he.nodes(who)
            return {"nodes": nodes, "strangers": he.strangers(who), "map": node_map(nodes)}
        return page(request, "clusters.html", "clusters", data)

    @r.get("/bulletins", response_class=HTMLResponse, include_in_schema=False)
    def bulletins(request: Request) -> Response:
        """The library: upload, record, text read aloud (operators); list, preview."""
        return page(request, "bulletins.html", "bulletins", lambda who: {})

    @r.get("/broadcast", response_class=HTMLResponse, include_in_schema=False)
    def broadcast(request: Request) -> Response:
        """A broadcast now or at a time, the live relays, the emergency, the
        scheduled broadcasts; ?file=NAME chooses a library bulletin."""
        def data(who: Actor) -> dict:
            try:
                media = request.app.state.library.items(who)
            except LoaxaError:  # no media folder: live sources only
                media = []
            return {"media": media, "chosen": request.query_params.get("file", ""),
                    "zones": he.zones(who), "scheduled": he.scheduled(who, SCHEDULED_ROWS)}
        return page(request, "broadcast.html", "broadcast", data)

    @r.get("/schedule", response_class=HTMLResponse, include_in_schema=False)
    def schedule(request: Request) -> Response:
        """The week the rules give each zone; for the admin the forms and the raw rules."""
        return page(request, "schedule.html", "schedule", lambda who: {
            "rules_text": he.rules_in_force(who).get("text", "")})

    @r.get("/map", response_class=HTMLResponse, include_in_schema=False)
    def map_(request: Request) -> HTMLResponse:
        """The map's SVG, for the page to refresh it when nodes change."""
        return HTMLResponse(ENV.get_template("map.html").render(
            map=node_map(he.nodes(actor(request))), **_globals(page_lang(request))))

    @r.get("/scheduled", response_class=HTMLResponse, include_in_schema=False)
    def scheduled(request: Request) -> HTMLResponse:
        """The scheduled broadcasts' rows, for the page to refresh its table."""
        user, role = actor(request)
        return HTMLResponse(ENV.get_template("scheduled.html").render(
            scheduled=he.scheduled((user, role), SCHEDULED_ROWS),
            can_operate=allowed(role, "operator"), **_globals(page_lang(request))))

    @r.get("/report", response_class=HTMLResponse, include_in_schema=False)
    def report(request: Request) -> Response:
        """The report as a page to print (or save as PDF) for the province; opened
        without dates, this month so far."""
        def data(who: Actor) -> dict:
            try:
                today = he.today()
                start = date.fromisoformat(request.query_params.get("from") or
                                           today.replace(day=1).isoformat())
                end = date.fromisoformat(request.query_params.get("to") or today.isoformat())
            except ValueError as e:
                raise LoaxaError(f"bad date: {e}", "from=YYYY-MM-DD&to=YYYY-MM-DD") from None
            return {"rep": he.report(who, start, end), "commune": he.commune(),
                    "made": datetime.now(he.tz).isoformat(sep=" ", timespec="minutes")}
        return page(request, "report.html", "reports", data)

    @r.post("/login", include_in_schema=False)
    async def login(request: Request, user: str = Form(..., max_length=64),
                    password: str = Form(..., max_length=256)) -> Response:
        got = await request.app.state.guard.login(user, password, client_addr(request))
        if isinstance(got, Refused):
            if got.why == "wrong":
                return RedirectResponse("/?bad=1", 303)
            code = page_lang(request)  # the login form again, saying how long to wait
            return HTMLResponse(ENV.get_template("login.html").render(
                user=None, wait=got.retry_after, **_globals(code)), 429,
                headers={"Retry-After": str(got.retry_after)})
        r = RedirectResponse("/", 303)
        set_session_cookie(request, r, got[0])
        return r

    @r.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        he.logout(token_of(request))
        r = RedirectResponse("/", 303)
        r.delete_cookie(COOKIE)
        return r

    @r.get("/api/stream", tags=["nodes"], response_class=StreamingResponse,
           responses={200: {"content": {"text/event-stream": {}},
                            "description": "`nodes` events: the node table's rows"}})
    async def stream(request: Request) -> StreamingResponse:
        """Server-sent events: `nodes` with the table's rendered rows, now and
        whenever a node's state or status changes; `view=brief`: the overview's
        four columns."""
        who = await run_in_threadpool(actor, request)  # the store's calls: off the loop
        code = page_lang(request)
        token = token_of(request)
        brief = request.query_params.get("view") == "brief"

        async def events() -> AsyncIterator[str]:
            """Until the client goes or its session ends (logout, expiry, a new
            password or role, the user removed)."""
            last = None
            # the store's calls block: off the loop, as the sync routes' are
            while await run_in_threadpool(he.session, token) is not None:
                body = await run_in_threadpool(rows, he, who, code, brief)
                if body != last:
                    last = body
                    yield "event: nodes\n" + "".join(
                        "data: " + ln + "\n" for ln in body.splitlines() or [""]) + "\n"
                if await request.is_disconnected():
                    return
                await asyncio.sleep(POLL_S)
        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    return r

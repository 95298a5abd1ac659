"""Logins that cannot be guessed or used to stall the head-end, and a page a
hostile browser cannot turn (docs/headend.md, "Logins and the page"): wrong
passwords throttled and locked out (audited, lifted by an admin or by time), an
emergency answered during a login flood, the security headers and cookie flags
on every page, /docs for users only, the live stream ended with its session,
sessions ended by a new password or role, users removed, and a scheduled
broadcast that goes out only while its author may still broadcast."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from test_headend_api import login, rig  # noqa: F401  (the module's head-end)

from loaxa.cli import main as cli
from loaxa.headend.app import create_app
from loaxa.rig.broker import free_port


@contextmanager
def served(app) -> Iterator[str]:
    """The app behind a real uvicorn on a free port, as `serve` runs it."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        th.join(10)


def test_wrong_passwords_are_throttled_locked_out_audited_and_lifted(rig):  # noqa: F811
    he, store = rig["he"], rig["store"]
    store.add_user("lam", "lam-secret", "operator", "test")
    app = create_app(he)
    guard = app.state.guard
    guard.LOCK_S = 3.0  # the test's window; the head-end's is 15 min
    guard.ADDR_MAX = 1000  # the address's own limit: the next test
    c = TestClient(app)
    admin = login(c, "an")
    codes = []
    for i in range(50):
        r = c.post("/api/login", json={"user": "lam", "password": f"guess-{i}"})
        codes.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
    first = codes.index(429)
    assert first < 19 and set(codes[:first]) == {401} and set(codes[first:]) == {429}, codes
    r = c.post("/api/login", json={"user": "lam", "password": "lam-secret"})
    assert r.status_code == 429 and "locked out" in r.json()["error"], r.text
    audit = store.audit_log(200)
    mine = [a for a in audit if a["who"] == "lam"]
    assert [a["result"] for a in mine if a["action"] == "login"] == \
        ["refused: wrong name or password"] * first
    assert [a["action"] for a in mine].count("login.lockout") == 1
    assert [x["user"] for x in c.get("/api/lockouts", headers=admin).json()] == ["lam"]
    time.sleep(guard.LOCK_S)  # the window passes: the right password works again
    assert c.post("/api/login", json={"user": "lam", "password": "lam-secret"}).status_code == 200
    # locked again, and lifted by an admin before its time
    guard.LOCK_S = 900.0
    for i in range(guard.USER_MAX):
        c.post("/api/login", json={"user": "lam", "password": f"again-{i}"})
    assert c.post("/api/login", json={"user": "lam", "password": "lam-secret"}).status_code == 429
    viewer = {"Authorization": "Bearer " + store.login("vien", "vien-secret")[0]}  # type: ignore[index]
    assert c.delete("/api/lockouts/lam", headers=viewer).status_code == 403
    assert c.delete("/api/lockouts/lam", headers=admin).json() == {"user": "lam",
                                                                   "state": "unlocked"}
    assert c.post("/api/login", json={"user": "lam", "password": "lam-secret"}).status_code == 200
    assert store.audit_log(3)[1]["action"] == "login.unlock"
    # and the CLI lifts it too
    for i in range(guard.USER_MAX):
        c.post("/api/login", json={"user": "lam", "password": f"more-{i}"})
    assert store.lockout("lam")
    assert cli(["headend", "user", "lam", "--unlock", "--data", str(rig["tmp"])]) == 0
    assert store.lockout("lam") is None


def test_an_address_guessing_names_is_answered_429(rig):  # noqa: F811
    c = TestClient(create_app(rig["he"]))
    codes = [c.post("/api/login", json={"user": f"user-{i}", "password": "x"}).status_code
             for i in range(15)]
    assert codes[:10] == [401] * 10 and codes[10:] == [429] * 5, codes
    r = c.post("/login", data={"user": "an", "password": "an-secret"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 200
    assert "Đăng nhập sai quá nhiều lần" in r.text  # the form says how long to wait


def test_an_emergency_during_a_login_flood_answers_within_500_ms(rig):  # noqa: F811
    app = create_app(rig["he"])
    app.state.guard.ADDR_MAX = 10**9  # every login of the flood costs its hash
    stop = threading.Event()
    seen: dict[int, int] = {}

    def flood(base: str, k: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as h:
            i = 0
            while not stop.is_set():
                i += 1
                r = h.post("/api/login", json={"user": f"flood-{k}-{i}", "password": "x" * 12})
                seen[r.status_code] = seen.get(r.status_code, 0) + 1
    with served(app) as base:
        oper = httpx.Client(base_url=base, timeout=30)
        assert oper.post("/api/login", json={"user": "oanh",
                                             "password": "oanh-secret"}).status_code == 200
        threads = [threading.Thread(target=flood, args=(base, k)) for k in range(8)]
        for th in threads:
            th.start()
        took = []
        try:
            time.sleep(1.0)
            for action in ("start", "stop", "start", "stop"):
                t0 = time.monotonic()
                r = oper.post("/api/emergency", json={"action": action})
                took.append(time.monotonic() - t0)
                assert r.status_code == 200, r.text
                time.sleep(0.3)
        finally:
            stop.set()
            for th in threads:
                th.join(30)
            oper.close()
    assert seen.get(401, 0) >= 3 and seen.get(429, 0) >= 10, seen  # hashed, and turned away
    assert max(took) < 0.5, took


NAV = ("/", "/clusters", "/clusters/n1", "/bulletins", "/broadcast", "/schedule", "/report",
       "/report?from=2026-11-23&to=2026-11-23", "/users", "/?lang=en")
PAGES = NAV + ("/map", "/scheduled", "/api/nodes", "/api/live", "/static/live.js",
               "/static/loaxa.css", "/openapi.json", "/nope")


def test_every_page_has_the_security_headers_and_no_inline_script(rig):  # noqa: F811
    c = TestClient(create_app(rig["he"]))
    r = c.post("/login", data={"user": "an", "password": "an-secret"}, follow_redirects=False)
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    for path in PAGES + ("/docs",):
        r = c.get(path)
        assert r.status_code == (404 if path == "/nope" else 200), (path, r.status_code)
        h = r.headers
        assert "frame-ancestors 'none'" in h["content-security-policy"], path
        assert "unsafe-inline" not in h["content-security-policy"], path
        assert h["x-content-type-options"] == "nosniff" and h["referrer-policy"] == "no-referrer"
        assert h["x-frame-options"] == "DENY"
    assert c.get("/").headers["content-security-policy"].startswith(
        "default-src 'self'; script-src 'self'; style-src 'self';")
    for path in NAV:
        page = c.get(path).text
        for tag in re.findall(r"<script[^>]*>", page):
            assert "src=" in tag or 'type="application/json"' in tag, (path, tag)
        assert "<style" not in page and " style=" not in page, path
        assert not re.search(r"\son[a-z]+=", page), path
    c.post("/logout")
    assert "HttpOnly" in c.post("/api/login", json={"user": "an", "password": "an-secret"}
                                ).headers["set-cookie"]
    # under TLS the session cookie is Secure
    tls = TestClient(create_app(rig["he"]), base_url="https://testserver")
    for r in (tls.post("/login", data={"user": "an", "password": "an-secret"},
                       follow_redirects=False),
              tls.post("/api/login", json={"user": "an", "password": "an-secret"})):
        assert "; secure" in r.headers["set-cookie"].lower(), r.headers["set-cookie"]


def test_docs_and_openapi_are_for_users_only(rig):  # noqa: F811
    c = TestClient(create_app(rig["he"]))
    for path in ("/docs", "/openapi.json", "/redoc"):
        r = c.get(path)
        assert r.status_code in (401, 404) and "swagger" not in r.text.lower(), path
    assert c.get("/openapi.json", headers=login(c, "vien")).status_code == 200


def test_the_live_stream_ends_with_its_session(rig):  # noqa: F811
    he, store = rig["he"], rig["store"]
    with served(create_app(he)) as base:
        for end in ("logout", "password", "remove"):
            store.add_user("thu", "thu-secret", "viewer", "test")
            token = store.login("thu", "thu-secret")[0]  # type: ignore[index]
            h = {"Authorization": "Bearer " + token}
            with httpx.Client(base_url=base, timeout=5) as c, \
                    c.stream("GET", "/api/stream", headers=h) as s:
                lines = s.iter_lines()
                assert next(lines) == "event: nodes"
                if end == "logout":
                    assert c.post("/api/logout", headers=h).status_code == 200
                elif end == "password":
                    store.add_user("thu", "thu-new-secret", "viewer", "test")
                else:
                    store.remove_user("thu", "test")
                t0 = time.monotonic()
                rest = list(lines)  # ends: a ReadTimeout (5 s) here means it kept going
                assert time.monotonic() - t0 < 3 and "event: nodes" not in rest, (end, rest)
                assert c.get("/api/nodes", headers=h).status_code == 401, end


def test_a_new_role_ends_sessions_and_a_removed_user_is_gone(rig):  # noqa: F811
    c, store = TestClient(create_app(rig["he"])), rig["store"]
    store.add_user("hoa", "hoa-secret", "operator", "test")
    h = login(c, "hoa")
    assert c.get("/api/nodes", headers=h).status_code == 200
    store.add_user("hoa", "hoa-secret", "viewer", "test")
    assert c.get("/api/nodes", headers=h).status_code == 401
    assert store.audit_log(1)[0]["detail"] == {"user": "hoa", "role": "viewer",
                                               "sessions_ended": 1}
    h = login(c, "hoa")
    assert cli(["headend", "user", "hoa", "--remove", "--data", str(rig["tmp"])]) == 0
    assert c.get("/api/nodes", headers=h).status_code == 401
    assert c.post("/api/login", json={"user": "hoa", "password": "hoa-secret"}
                  ).status_code == 401
    assert store.audit_log(2)[1]["action"] == "user.remove"
    assert cli(["headend", "user", "hoa", "--remove", "--data", str(rig["tmp"])]) != 0


def test_a_scheduled_broadcast_fires_only_while_its_author_may_broadcast(rig):  # noqa: F811
    c, store, he, lis = TestClient(create_app(rig["he"])), rig["store"], rig["he"], \
        rig["listener"]
    for name in ("son", "tuan"):
        store.add_user(name, f"{name}-secret", "operator", "test")
    soon = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 7 * 3600 + 3600))
    ids = {}
    for name in ("son", "tuan"):
        r = c.post("/api/broadcast", json={"file": "news", "at": soon}, headers=login(c, name))
        assert r.status_code == 200, r.text
        ids[name] = r.json()["id"]
    store.add_user("son", "son-secret", "viewer", "test")  # demoted
    store.remove_user("tuan", "test")
    sent, heard = len(store.broadcasts()), len(lis.got)
    with store.tx() as db:
        db.execute("UPDATE scheduled SET due=? WHERE id IN (?, ?)",
                   (time.time() - 1, ids["son"], ids["tuan"]))
    assert he.fire_due() == []
    got = {s["id"]: (s["state"], s["note"]) for s in store.scheduled(limit=10)}
    assert got[ids["son"]] == ("failed", "son may no longer broadcast (now viewer)")
    assert got[ids["tuan"]] == ("failed", "tuan may no longer broadcast (removed)")
    time.sleep(0.3)
    assert len(store.broadcasts()) == sent and len(lis.got) == heard


@pytest.fixture(autouse=True)
def _fresh_lockouts(rig):  # noqa: F811
    yield
    for x in rig["store"].lockouts():
        rig["store"].unlock(x["user"], "test")


def test_changing_your_own_password_ends_your_other_sessions_not_this_one(rig):  # noqa: F811
    c, store = TestClient(create_app(rig["he"])), rig["store"]
    store.add_user("lan", "lan-secret", "admin", "test")
    here, elsewhere = login(c, "lan"), login(c, "lan")
    r = c.put("/api/users/lan", json={"password": "lan-new-secret", "role": "admin"},
              headers=here)
    assert r.status_code == 200, r.text
    assert c.get("/api/nodes", headers=here).status_code == 200
    assert c.get("/api/nodes", headers=elsewhere).status_code == 401
    assert store.audit_log(1)[0]["detail"] == {"user": "lan", "role": "admin",
                                               "sessions_ended": 1}

"""The schedule without TOML (lịch phát): the broadcast windows, quiet hours,
duration caps and schedule items of the rules in force as a form model, and
the form's answer written back into the same rules file (docs/headend.md,
"Schedule forms").

The file is edited, not regenerated: tomlkit keeps every comment, every key the
forms do not show (exceptions, streams, lunar dates...) and every table the
officer did not touch byte for byte, so loading the rules and saving them
unchanged gives the identical text. The result goes through the one checker
(rules.compile_text) before anything is pushed; its error names the field
(window[1].time), which the page shows next to that field."""

from __future__ import annotations

import tomllib
from typing import Any

import tomlkit
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ..errors import LoaxaError
from .service import Actor, Headend

WINDOW = ("name", "days", "time", "volume", "max_volume", "zones", "priorities")
ITEM = ("name", "source", "start", "minutes", "days", "zones", "priority", "volume")
LIMITS = ("session_minutes", "sessions_per_day", "minutes_per_day")
TOP = ("version", "quiet_hours")


class Form(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base: str = Field("", max_length=200_000,
                      description="the rules text the form was loaded from")
    version: str | None = Field(None, max_length=64)
    quiet_hours: str | None = Field(None, max_length=32)
    limits: dict[str, int | None] = Field(default_factory=dict)
    windows: list[dict[str, Any]] = Field(default_factory=list, max_length=64)
    items: list[dict[str, Any]] = Field(default_factory=list, max_length=256)
    push: bool = False


def _plain(v: Any) -> Any:
    """tomlkit's or tomllib's value as JSON."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v.unwrap() if hasattr(v, "unwrap") else v


def model(text: str) -> dict:
    """The form's view of a rules text: each window and item with its index in
    the file (`i`), so that an edit changes that table and nothing else."""
    try:
        doc = tomllib.loads(text or "")
    except tomllib.TOMLDecodeError as e:
        raise LoaxaError(f"the rules are not TOML: {e}", "fix them in the text editor") from None
    lim = doc["limits"] if isinstance(doc.get("limits"), dict) else {}
    return {"version": doc.get("version"), "quiet_hours": doc.get("quiet_hours"),
            "limits": {k: lim.get(k) for k in LIMITS},
            "windows": [{"i": i, **{k: w.get(k) for k in WINDOW}}
                        for i, w in enumerate(doc.get("window") or []) if isinstance(w, dict)],
            "items": [{"i": i, **{k: s.get(k) for k in ITEM}}
                      for i, s in enumerate(doc.get("schedule") or []) if isinstance(s, dict)],
            "zones": [z for z in doc.get("zones") or [] if isinstance(z, str)]}


def _empty(v: Any) -> bool:
    return v is None or v == "" or v == []


def _set(table: Any, key: str, value: Any) -> None:
    """table[key] = value, or no key for an empty value; an equal value is left
    as written (its comment, its quoting)."""
    if _empty(value):
        if key in table:
            del table[key]
    elif key not in table or _plain(table[key]) != value:
        table[key] = value


def _rows(doc: Any, key: str, rows: list[dict], fields: tuple[str, ...]) -> None:
    old = list(doc.get(key) or [])
    tables = []
    for r in rows:
        i = r.get("i")
        t = old[i] if isinstance(i, int) and 0 <= i < len(old) else tomlkit.table()
        for k in fields:
            if k in r:
                _set(t, k, r[k])
        tables.append(t)
    if len(tables) == len(old) and all(a is b for a, b in zip(tables, old, strict=True)):
        return  # the same tables in the same order: the text stays as it was
    if not tables:
        if key in doc:
            del doc[key]
        return
    aot = tomlkit.aot()
    for t in tables:
        aot.append(t)
    if key in doc:
        doc[key] = aot
    else:
        doc.append(key, aot)


def apply(text: str, form: Form, files: dict | None = None) -> str:
    """The rules text with the form's values in place. files: where the nodes
    fetch a library bulletin (serve's stream server as a session), written as
    the rules' [files] table when an item names one (file:NAME) and the text has
    none: without it the nodes would know no way to the bulletin."""
    try:
        doc = tomlkit.parse(text or "")
    except Exception as e:  # tomlkit's parse errors share no base class but Exception
        raise LoaxaError(f"the rules are not TOML: {e}", "fix them in the text editor") from None
    for k in TOP:  # None: as it is; "" is a value here (quiet_hours = "": none)
        v = getattr(form, k)
        if v is not None and (k not in doc or _plain(doc[k]) != v.strip()):
            doc[k] = v.strip()
    if form.limits:
        bad = set(form.limits) - set(LIMITS)
        if bad:
            raise LoaxaError(f"unknown limits {', '.join(sorted(bad))}")
        if "limits" not in doc and any(not _empty(v) for v in form.limits.values()):
            doc["limits"] = tomlkit.table()
        if "limits" in doc:
            for k, v in form.limits.items():
                _set(doc["limits"], k, v)
    for rows, fields in ((form.windows, WINDOW), (form.items, ITEM)):
        for r in rows:
            bad = set(r) - set(fields) - {"i"}
            if bad:
                raise LoaxaError(f"unknown fields {', '.join(sorted(bad))}")
    used = {z for r in [*form.windows, *form.items] for z in (r.get("zones") or [])}
    declared = [z for z in _plain(doc.get("zones") or []) if isinstance(z, str)]
    if used - set(declared):  # a zone the forms name is declared with the others
        doc["zones"] = declared + sorted(used - set(declared))
    _rows(doc, "window", form.windows, WINDOW)
    _rows(doc, "schedule", form.items, ITEM)
    if files and "files" not in doc and any(
            str(r.get("source") or "").startswith("file:") for r in form.items):
        t = tomlkit.table()
        for k in ("url", "codec", "rate", "pt"):
            if k in files:
                t[k] = files[k]
        doc["files"] = t
    return tomlkit.dumps(doc)


def router(he: Headend) -> APIRouter:
    """The schedule forms' routes."""
    from . import models as m
    from .app import actor

    r = APIRouter(prefix="/api/rules/form", tags=["rules"])

    def base_text(who: Actor) -> str:
        return he.rules_in_force(who).get("text") or ""

    @r.get("", response_model=m.RulesForm, response_model_exclude_unset=True)
    def form_model(request: Request) -> dict:
        """The rules in force as the schedule forms show them, with their text
        (`base`, to send back with the form)."""
        who = actor(request)
        text = base_text(who)
        return {"base": text, **model(text), "known_zones": sorted(he.store.zones())}

    @r.post("", response_model=m.RulesFormSaved, response_model_exclude_unset=True)
    def form_save(body: Form, request: Request) -> dict:
        """The form's values written into its base text: the new text and the
        checker's verdict (errors name the field); with `push`, and no error,
        pushed to every node as POST /api/rules does (admin)."""
        who = actor(request)
        he._check(who, "admin" if body.push else "viewer", "rules.form", {})
        text = apply(body.base, body, he.fmt.session(url=he.files_url) if he.files_url else None)
        verdict = he.check_rules(who, text)
        out = {"text": text, "check": verdict}
        if body.push and verdict["ok"]:
            out["pushed"] = he.push_rules(who, text)
        return out

    return r

"""What the tools say to people, in English or Vietnamese by $LANG.

English is in the code (MESSAGES, one entry per message, marked with N_ so
Babel extracts it); the translations are gettext catalogues,
locale/<lang>/LC_MESSAGES/loaxa.po, compiled to .mo by `make` (docs/i18n.md
says how translators work with them). A message without a translation, or a
missing catalogue, falls back to English.
"""

from __future__ import annotations

import gettext
import os
from pathlib import Path

DOMAIN = "loaxa"
LOCALEDIR = Path(__file__).parent / "locale"
LANGUAGES = ("en", "vi")


def N_(msg: str) -> str:
    """Marks a message for extraction; it is translated when shown (t)."""
    return msg


MESSAGES: dict[str, str] = {
    "sim.started": N_(
        "Simulated node running (board {board}, heap {heap} KB).\n"
        "  console: {url}\n"
        "  flash:   {state}\n"
        "  audio:   {audio}\n"
        "Open the console with any serial tool, e.g.\n"
        "  python -m serial.tools.miniterm {url}\n"
        "Ctrl-C here powers the node off."),
    "sim.stopped": N_("Node powered off."),
    "demo.boot": N_("Booting a simulated speaker node (real MicroPython VM)..."),
    "demo.console": N_("Console on {url}"),
    "demo.health": N_("Node health (console `status`):"),
    "demo.rows": N_("firmware|uptime|clock|volume|playing|heap|errors"),
    "demo.uptime": N_("{s} s, reset cause {cause}"),
    "demo.synced": N_("synced"),
    "demo.unsynced": N_("NOT synced: no scheduled content"),
    "demo.nothing": N_("nothing"),
    "demo.none": N_("none"),
    "demo.heap": N_("{alloc} B used, {free} B free"),
    "demo.tone": N_("Speaker test: 1 kHz tone for 1 s at 80 % ..."),
    "demo.captured": N_("  captured: {path}"),
    "demo.log": N_("Full console log: {path}"),
    "demo.own": N_("Run your own node: .venv/bin/loaxa sim   (then open the printed port)"),
    "flash.done": N_("{port}: flashed MicroPython {version} ({chip}, MAC {mac})."),
    "flash.same": N_(
        "{port}: MicroPython {version} already on the board ({chip}, MAC {mac}); "
        "nothing written."),
    "deploy.done": N_(
        "{port}: deployed {app} ({sent} of {files} files sent, {kb:.1f} KB on the "
        "wire, {s:.1f} s); the application restarted."),
    "deploy.same": N_("{port}: {app} is already installed and verified; nothing sent."),
    "provision.done": N_(
        "{port}: node {node} provisioned, keys stored in the inventory, tone played."),
    "batch.summary": N_("{ok} of {n} boards ready."),
    "rules.ok": N_(
        "{file}: ok — {windows} windows, {items} schedule items, {exceptions} "
        "exceptions, {size} bytes compiled"),
    "rules.wrote": N_("wrote {file} ({size} bytes)"),
    "rules.plays": N_("  PLAYS at {volume} %"),
    "rules.refused": N_("  REFUSED"),
    "rules.why": N_("  why:   {reason}"),
    "rules.until": N_("  until: {until}"),
    "rules.no_change": N_("no change within a week"),
    "rules.item": N_("  schedule: {item} ({src}) runs until {end}"),
    "rules.week": N_(
        "Week of Monday {monday} (UTC{tz}); times when normal content may play, at "
        "its default volume:"),
    "rules.zone": N_("== zone {zone} =="),
    "rules.all_nodes": N_("== all nodes =="),
    "rules.silent": N_("silent"),
    "rules.silent_exc": N_("silent (exception {name})"),
    "rules.refused_at": N_("refused: {reason}"),
    # TRANSLATORS: the days of the week, Monday first, separated by |
    "rules.days": N_("Mon|Tue|Wed|Thu|Fri|Sat|Sun"),
    "rules.open": N_("{volume} % (max {cap} %)"),
    "rules.emergency": N_("Emergency plays at any hour at {volume} %."),
    "priority.emergency": N_("emergency"),
    "priority.priority": N_("priority"),
    "priority.normal": N_("normal"),
    "priority.test": N_("test"),
    "kind.live": N_("live"),
    "kind.file": N_("file"),
    "kind.relay": N_("relay"),
    "kind.tone": N_("tone"),
    "reason.emergency": N_("emergency: plays at any hour at {volume} %"),
    "reason.untrusted_live": N_(
        "clock not trusted: live plays at {volume} %, the lowest window volume"),
    "reason.untrusted_waits": N_(
        "clock not trusted (no time sync yet): {kind} content waits for one"),
    "reason.quiet_hours": N_("quiet hours {start}-{end}: only emergency plays"),
    "reason.exception_mutes": N_("exception {exception}: silence on these dates"),
    "reason.outside_windows": N_("outside every broadcast window"),
    "reason.outside_zones": N_("outside every broadcast window of zone {zones}"),
    "reason.window_denies_priority": N_("window {window} does not allow {priority}"),
    "reason.sessions_per_day": N_("limit of {limit} sessions a day reached"),
    "reason.minutes_per_day": N_("limit of {limit} minutes a day reached"),
    "reason.session_minutes": N_("limit of {limit} minutes a session reached"),
    "reason.window_allows": N_(
        "window {window} ({start}-{end}) allows {priority} at {volume} % (cap {cap} %)"),
    "reason.item_ended": N_("schedule item ended"),
    "error": N_("error: {msg}"),
    "hint": N_("  hint: {hint}"),
    "stream.ready": N_("Streaming {source} as {codec} {rate} Hz, {ptime} ms packets."),
    "stream.udp": N_("  RTP/UDP to {dest}"),
    "stream.http": N_("  HTTP (RFC 4571) for nodes on port {port}; session: {session}"),
    "stream.sdp": N_("  SDP written to {path}"),
    "stream.progress": N_(
        "\r  {seconds:7.1f} s sent, {clients} HTTP client(s), worst lag {late:.0f} ms"),
    "stream.done": N_(
        "\n"
        "Done: {seconds:.1f} s of audio in {packets} packets."),
}


def lang() -> str:
    """The reader's language: the first of $LANGUAGE, $LC_ALL, $LC_MESSAGES, $LANG set."""
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        v = os.environ.get(var, "")
        if v:
            return "vi" if v.lower().startswith("vi") else "en"
    return "en"


_catalogues: dict[str, gettext.NullTranslations] = {}


def catalogue(code: str | None = None) -> gettext.NullTranslations:
    code = code or lang()
    if code not in _catalogues:
        _catalogues[code] = gettext.translation(DOMAIN, LOCALEDIR, [code], fallback=True)
    return _catalogues[code]


def t(key: str, **kw: object) -> str:
    return catalogue().gettext(MESSAGES[key]).format(**kw)

"""loaxa headend: the commune head-end. `serve` runs it (docs/headend.md); `nodes`,
`broadcast`, `emergency`, `rules push`, `report` and `user` call the same library
as its API, on the store `serve` keeps in --data; `stream` and `files` turn a
file or station into RTP."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from loaxa_node.audio.codec import NAMES as CODECS
from loaxa_node.config import TOPIC_PREFIX
from loaxa_node.control.protocol import BROADCAST_PRIORITIES, HEARTBEAT_S

from ..headend.roles import ROLES
from ..i18n import t
from ..streamer import FileServer, Format, Stats, parse_dest, stream, tls_context


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("headend", help="commune head-end: stream audio to nodes",
                       description="The commune head-end.")
    hs = p.add_subparsers(dest="headend_cmd", metavar="ACTION", required=True)
    s = hs.add_parser(
        "stream",
        help="stream a file or HTTP station to nodes over RTP",
        description="Decode any audio file (WAV, MP3, FLAC, OGG...) or HTTP station with "
        "ffmpeg, encode it to a payload every node decodes and send it in real time: RTP "
        "over UDP (unicast or multicast) and/or an HTTP server that nodes GET (RFC 4571 "
        "framing; works through carrier NAT).",
        epilog="Example: loaxa headend stream news.mp3 --codec DVI4 --rate 16000 "
        "--udp 239.10.0.1:5004 --sdp news.sdp --http 8000",
    )
    s.add_argument("source", help="audio file or http(s):// station URL")
    s.add_argument("--codec", default="DVI4", choices=CODECS,
                   help="payload (default DVI4: 4 bits a sample)")
    s.add_argument("--rate", type=int, default=16000,
                   help="sample rate: 8000 for PCMU/PCMA, 8000/16000 for DVI4, "
                   "8000-48000 for L16 (default 16000)")
    s.add_argument("--ptime", type=int, default=20, help="packet duration in ms (default 20)")
    s.add_argument("--udp", action="append", default=[], metavar="HOST:PORT",
                   help="send RTP to this address (repeatable; multicast groups too)")
    s.add_argument("--http", type=int, metavar="PORT",
                   help="serve the stream to nodes over HTTP on this port (0: any free)")
    _tls_args(s)
    s.add_argument("--bind", default="0.0.0.0", help="address the HTTP server listens on")
    s.add_argument("--sdp", metavar="FILE", help="write the SDP of the first --udp destination")
    s.add_argument("--wait-clients", type=int, default=0, metavar="N",
                   help="start only once N nodes are connected over HTTP")
    s.add_argument("--loop", action="store_true", help="repeat the file until stopped")
    s.add_argument("--quiet", action="store_true", help="no progress line")
    s.set_defaults(func=run_stream)
    f = hs.add_parser(
        "files",
        help="serve a folder of audio files to nodes on request (schedule items file:NAME)",
        description="Serve every audio file in DIR over HTTP: a node GETs "
        "/file/TOKEN/NAME (the file's name with or without its extension) and receives "
        "that file as RFC 4571 framed RTP in real time, then the end of the response. "
        "Nothing is served without the token.",
        epilog="Example: loaxa headend files /srv/bulletins --http 8001 --token-file tok "
        '(the rules then say [files] url = "http://HEADEND:8001/file/TOKEN/", '
        'codec = "DVI4", rate = 16000)',
    )
    f.add_argument("dir", help="folder of audio files")
    f.add_argument("--http", type=int, required=True, metavar="PORT",
                   help="port to listen on (0: any free)")
    f.add_argument("--codec", default="DVI4", choices=CODECS,
                   help="payload (default DVI4)")
    f.add_argument("--rate", type=int, default=16000, help="sample rate (default 16000)")
    f.add_argument("--ptime", type=int, default=20, help="packet duration in ms (default 20)")
    f.add_argument("--bind", default="0.0.0.0", help="address to listen on")
    _tls_args(f)
    f.add_argument("--token-file", metavar="FILE",
                   help="the token nodes must give (kept here, made on first use, so the "
                   "rules' url survives a restart; default: a new one each run)")
    f.set_defaults(func=run_files)
    _register_operator(hs)


def _tls_args(p: argparse.ArgumentParser, prefix: str = "",
              cert_help: str = "serve HTTPS with this certificate") -> None:
    """--PREFIXtls-cert and --PREFIXtls-key: a pair, read back by _tls_pair."""
    p.add_argument(f"--{prefix}tls-cert", metavar="PEM", help=cert_help)
    p.add_argument(f"--{prefix}tls-key", metavar="PEM", help=f"private key of --{prefix}tls-cert")


def _tls_pair(args: argparse.Namespace, prefix: str = "") -> tuple[str, str] | None:
    """(cert, key) of a _tls_args pair, None without; one given alone is refused."""
    from ..errors import LoaxaError

    name = prefix.replace("-", "_")
    cert, key = getattr(args, name + "tls_cert"), getattr(args, name + "tls_key")
    if (cert is None) != (key is None):
        raise LoaxaError(f"give both --{prefix}tls-cert and --{prefix}tls-key")
    return (cert, key) if cert else None


def _data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="the head-end's folder (default "
                   "$LOAXA_HEADEND or ~/.local/share/loaxa/headend)")


def _register_operator(hs: argparse._SubParsersAction) -> None:
    from . import add_inventory_arg

    s = hs.add_parser(
        "serve", help="run the head-end: web page and API, MQTT broker, file server",
        description="One command: the API and web page on --port, an embedded MQTT broker "
        "on --mqtt-port (or --broker URL for mosquitto), the media folder served to nodes, "
        "commands signed with the inventory's keys, and every status and event the nodes "
        "send kept in the store.",
        epilog="Example: loaxa headend serve --commune an-phu --media /srv/bulletins "
        "--public-host 192.168.1.10")
    _data_arg(s)
    add_inventory_arg(s)
    s.add_argument("--commune", required=True, help="the commune this head-end runs")
    s.add_argument("--bind", default="0.0.0.0", help="address to listen on")
    s.add_argument("--port", type=int, default=8080, help="web page and API (default 8080)")
    s.add_argument("--broker", metavar="URL",
                   help="mqtt(s)://host[:port] of an external broker (default: embedded)")
    s.add_argument("--broker-ca", metavar="FILE",
                   help="with --broker mqtts://: the CA (PEM or DER) the broker's certificate "
                   "must chain to, as the nodes pin it (default: the system's CAs)")
    s.add_argument("--mqtt-port", type=int, default=1883,
                   help="port of the embedded broker (default 1883)")
    _tls_args(s, "mqtt-", "also run a TLS listener on the embedded broker with this certificate "
              "(nodes that come in over the Internet)")
    s.add_argument("--mqtt-tls-port", type=int, default=8883,
                   help="port of the embedded broker's TLS listener (default 8883)")
    s.add_argument("--media", metavar="DIR", help="folder of audio files to broadcast, "
                   "where the bulletin library keeps uploads (default: DATA/media)")
    s.add_argument("--files-port", type=int, default=8001,
                   help="port nodes fetch media files from (default 8001)")
    s.add_argument("--public-host", default="127.0.0.1",
                   help="this machine's address as nodes reach it")
    s.add_argument("--prefix", default=TOPIC_PREFIX,
                   help=f"MQTT topic prefix (default {TOPIC_PREFIX})")
    _tls_args(s)
    s.add_argument("--tls-self-signed", action="store_true",
                   help="serve HTTPS with a certificate the head-end makes for itself under "
                   "DATA/tls (for the page's microphone on the commune's network)")
    s.add_argument("--tts-command", metavar="TEMPLATE",
                   help="the text-to-speech engine, a command with {text} (a UTF-8 file, "
                   "also on stdin), {out} (the WAV to write), {voice}, {rate}, {wpm}, "
                   "{length_scale}; default: espeak-ng's Vietnamese voice "
                   "(docs/headend.md, Text read aloud)")
    s.add_argument("--alert-offline-s", type=float, metavar="S",
                   help="alert when a loudspeaker cluster is offline this long "
                   f"(default {3 * HEARTBEAT_S}: three heartbeats)")
    s.add_argument("--alert-email", metavar="ADDR[,ADDR]",
                   help="send alerts by e-mail to these addresses")
    s.add_argument("--smtp", metavar="HOST:PORT", help="the SMTP server for --alert-email "
                   "(default 127.0.0.1:25; STARTTLS when offered; login from "
                   "$LOAXA_SMTP_USER and $LOAXA_SMTP_PASSWORD)")
    s.add_argument("--alert-from", metavar="ADDR", help="the alerts' From address")
    s.add_argument("--alert-webhook", metavar="URL",
                   help="POST each alert as JSON to this URL")
    s.set_defaults(func=run_serve)

    bf = hs.add_parser(
        "broker-files", help="write mosquitto's password and ACL files from the inventory",
        description="Every node of the commune(s) is a broker user named by its node id with "
        "the password provisioning gave it; the head-end has its own users. Writes passwd "
        "(mosquitto_passwd's PBKDF2-SHA512 format) and acl (pattern lines with %%u) into "
        "--out, each 0600, and prints the mosquitto.conf lines that use them. Run it again "
        "after provisioning nodes, then reload mosquitto (SIGHUP).",
        epilog="Example: loaxa headend broker-files --commune an-phu --out /etc/mosquitto/loaxa "
        "&& systemctl reload mosquitto")
    add_inventory_arg(bf)
    bf.add_argument("--commune", action="append", required=True,
                    help="a commune the broker serves (repeatable)")
    bf.add_argument("--out", required=True, metavar="DIR", help="folder to write passwd and acl")
    bf.add_argument("--prefix", default=TOPIC_PREFIX,
                   help=f"MQTT topic prefix (default {TOPIC_PREFIX})")
    bf.set_defaults(func=run_broker_files)

    u = hs.add_parser("user", help="add a user, change a password or role, remove a user "
                      "or lift a lockout",
                      description="With --role, the password is read from standard input "
                      "(one line); a changed password or role ends the user's sessions.")
    _data_arg(u)
    u.add_argument("name")
    what = u.add_mutually_exclusive_group(required=True)
    what.add_argument("--role", choices=ROLES)
    what.add_argument("--remove", action="store_true",
                      help="remove the user (their sessions end; the audit log keeps them)")
    what.add_argument("--unlock", action="store_true",
                      help="lift a lockout after too many failed logins")
    u.set_defaults(func=run_user)

    n = hs.add_parser("nodes", help="the loudspeaker clusters: online, last seen, playing, volume")
    _data_arg(n)
    n.add_argument("--json", action="store_true", help="print JSON")
    n.set_defaults(func=run_nodes)

    b = hs.add_parser("broadcast", help="play a file, or relay a station or a microphone, "
                      "on chosen zones")
    _data_arg(b)
    b.add_argument("file", metavar="FILE|URL",
                   help="name of a file in the head-end's --media folder, or a live source "
                   "that serve relays: a station's URL (http://..., rtp://...) or a microphone "
                   "(alsa:default, pulse:default)")
    b.add_argument("--zones", default="", help="comma-separated areas (zones; default: all)")
    b.add_argument("--priority", default="normal", choices=BROADCAST_PRIORITIES)
    b.add_argument("--title", default="", help="title for the play log")
    b.add_argument("--at", metavar="TIME", help="broadcast then, not now: 'YYYY-MM-DD HH:MM[:SS]' "
                   "in the commune's time, or ISO 8601 with an offset")
    b.set_defaults(func=run_broadcast)

    sc = hs.add_parser("scheduled", help="broadcasts given a time (--at), and what became of them")
    _data_arg(sc)
    sc.add_argument("--json", action="store_true", help="print JSON")
    sc.set_defaults(func=run_scheduled)

    c = hs.add_parser("cancel", help="cancel a scheduled broadcast before its time")
    _data_arg(c)
    c.add_argument("id", type=int, help="its id (loaxa headend scheduled)")
    c.set_defaults(func=run_cancel)

    e = hs.add_parser("emergency", help="start or end an emergency on every loudspeaker cluster")
    _data_arg(e)
    e.add_argument("action", choices=("start", "stop"))
    e.add_argument("--file", help="a media file to play (default: a siren)")
    e.add_argument("--title", default="")
    e.set_defaults(func=run_emergency)

    r = hs.add_parser("rules", help="push the commune's rules, checked and signed")
    rs = r.add_subparsers(dest="rules_cmd", metavar="ACTION", required=True)
    rp = rs.add_parser("push", help="check FILE, sign it for every node with its own key, "
                       "publish it")
    _data_arg(rp)
    rp.add_argument("file")
    rp.set_defaults(func=run_rules_push)
    fu = rs.add_parser("files-url", help="serve's stream server URL with a token for every "
                       "file: the [files] url of rules signed with `loaxa rules compile --sign`")
    _data_arg(fu)
    fu.set_defaults(func=run_files_url)

    rep = hs.add_parser("report", help="broadcast minutes per area and day")
    _data_arg(rep)
    rep.add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD")
    rep.add_argument("--to", dest="end", required=True, metavar="YYYY-MM-DD")
    rep.add_argument("--format", default="csv", choices=("csv", "json"))
    rep.set_defaults(func=run_report)


def _data(args: argparse.Namespace) -> str:
    import os
    from pathlib import Path

    return str(args.data or os.environ.get("LOAXA_HEADEND") or (
        Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
        / "loaxa" / "headend"))


def _open(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The head-end's files, for one CLI call: closed (its broker session too) on the way out."""
    from contextlib import closing

    from ..headend.server import open_headend

    return closing(open_headend(_data(args)))


def _actor() -> tuple[str, str]:
    """Who may open the head-end's files may do anything: the CLI acts as admin,
    named after the account (the audit log says who)."""
    from ..inventory import who

    return ("cli:" + who(), "admin")


def run_serve(args: argparse.Namespace) -> int:
    import os

    from ..errors import LoaxaError
    from ..headend.server import serve

    _tls_pair(args)
    if args.tls_self_signed:
        if args.tls_cert:
            raise LoaxaError("give --tls-cert/--tls-key or --tls-self-signed, not both")
        from ..headend.selfsigned import ensure

        args.tls_cert, args.tls_key, fp = ensure(_data(args), args.public_host)
        print(f"self-signed certificate {args.tls_cert}, SHA-256 {fp}", flush=True)
    _tls_pair(args, "mqtt-")
    if args.mqtt_tls_cert and args.broker:
        raise LoaxaError("--mqtt-tls-cert is for the embedded broker",
                         "configure TLS on the broker named by --broker instead")
    for f in (args.mqtt_tls_cert, args.mqtt_tls_key):
        if f and not os.access(f, os.R_OK):
            raise LoaxaError(f"cannot read {f}", "give a PEM certificate and its key")
    if args.broker_ca and not (args.broker or "").startswith("mqtts://"):
        raise LoaxaError("--broker-ca is for a TLS broker",
                         "give --broker mqtts://HOST[:PORT] with it")
    serve(_data(args), args.inventory or os.environ.get("LOAXA_INVENTORY"), args.commune,
          args.bind, args.port, args.broker, args.mqtt_port, args.media, args.files_port,
          args.public_host, args.prefix,
          (args.tls_cert, args.tls_key) if args.tls_cert else None,
          os.path.abspath(args.broker_ca) if args.broker_ca else None, args.tts_command,
          alert_config(args),
          (os.path.abspath(args.mqtt_tls_cert), os.path.abspath(args.mqtt_tls_key))
          if args.mqtt_tls_cert else None, args.mqtt_tls_port)
    return 0


def run_broker_files(args: argparse.Namespace) -> int:
    import os

    from ..headend.access import Access, mosquitto_conf
    from ..inventory import Inventory

    with Inventory(args.inventory or os.environ.get("LOAXA_INVENTORY")) as inv:
        access = Access.from_inventory(inv, args.prefix, args.commune)
    passwd, acl = access.write_files(args.out)
    nodes = sum(1 for _, role, _ in access.users.values() if role == "node")
    print(t("headend.broker_files", passwd=passwd, acl=acl, nodes=nodes,
            users=len(access.users) - nodes))
    print(mosquitto_conf(args.out), end="")
    return 0


def alert_config(args: argparse.Namespace) -> dict:
    from ..headend.alerts import parse_config

    return parse_config(args.alert_email, args.smtp, args.alert_from, args.alert_webhook,
                        args.alert_offline_s)


def run_user(args: argparse.Namespace) -> int:
    from ..errors import LoaxaError

    if args.remove:
        with _open(args) as he:
            he.store.remove_user(args.name, _actor()[0])
        print(t("headend.user_removed", name=args.name))
        return 0
    if args.unlock:
        with _open(args) as he:
            if not he.store.unlock(args.name, _actor()[0]):
                raise LoaxaError(f"{args.name} is not locked out")
        print(t("headend.user_unlocked", name=args.name))
        return 0
    password = sys.stdin.readline().rstrip("\n")
    with _open(args) as he:
        he.store.add_user(args.name, password, args.role, _actor()[0])
    print(t("headend.user", name=args.name, role=args.role))
    return 0


def _listing(args: argparse.Namespace, rows: list[dict], cols: str,
             row: Callable[[dict], tuple]) -> int:
    """rows as JSON (--json) or as a table with the columns named by message cols."""
    from ..term import print_table

    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        print_table(t(cols).split("|"), [row(r) for r in rows])
    return 0


def run_files_url(args: argparse.Namespace) -> int:
    with _open(args) as he:
        print(he.files_token_url(_actor()))
    return 0


def run_nodes(args: argparse.Namespace) -> int:
    with _open(args) as he:
        rows = he.nodes(_actor())

    def row(n: dict) -> tuple:
        st = n["status"] or {}
        playing = st.get("playing") or {}
        return (n["node_id"], " ".join(n["zones"]), n["state"], _ago(n["last_seen"]),
                playing.get("title") or playing.get("source") or "", st.get("volume", ""),
                st.get("fw", ""))
    return _listing(args, rows, "headend.nodes_cols", row)


def _ago(ts: float | None) -> str:
    import time

    return "-" if ts is None else t("headend.ago", s=int(time.time() - ts))


def _print(doc: object) -> None:
    print(json.dumps(doc, ensure_ascii=False))


def run_broadcast(args: argparse.Namespace) -> int:
    from datetime import datetime

    from ..errors import LoaxaError

    zones = [z.strip() for z in args.zones.split(",") if z.strip()] or None
    try:
        at = datetime.fromisoformat(args.at) if args.at else None
    except ValueError:
        raise LoaxaError(f"bad time {args.at!r}", "'YYYY-MM-DD HH:MM', e.g. "
                         "'2026-12-24 06:30' (the commune's time)") from None
    with _open(args) as he:
        out = he.broadcast(_actor(), args.file, zones, args.priority, args.title, at)
        if at is None and out["state"] == "pending":
            out = _handed_to_serve(he, out["id"])
        _print(out)
    return 0


def _handed_to_serve(he: Any, sid: int) -> dict:
    """A live broadcast the CLI handed to serve (which relays it): its outcome."""
    import time

    from ..errors import LoaxaError

    deadline = time.monotonic() + 30  # serve looks every second; a source may take 10 s
    while (s := he.store.scheduled(sid)[0])["state"] in ("pending", "firing"):
        if time.monotonic() > deadline:
            return {"id": sid, "state": s["state"], "due": "now"}
        time.sleep(0.2)
    if s["state"] != "fired":
        raise LoaxaError(f"the live broadcast was not sent: {s['note'] or s['state']}",
                         "is `loaxa headend serve` running? it relays live sources")
    return {"id": s["broadcast"], "state": "sent", "scheduled": sid}


def run_scheduled(args: argparse.Namespace) -> int:
    with _open(args) as he:
        rows = he.scheduled(_actor())
    return _listing(args, rows, "headend.scheduled_cols", lambda s: (
        s["id"], s["due"], s["file"], " ".join(s["zones"] or []) or "*",
        t("web.sched." + s["state"]), s["who"]))


def run_cancel(args: argparse.Namespace) -> int:
    with _open(args) as he:
        _print(he.cancel(_actor(), args.id))
    return 0


def run_emergency(args: argparse.Namespace) -> int:
    with _open(args) as he:
        _print(he.emergency(_actor(), args.action, args.file, args.title))
    return 0


def run_rules_push(args: argparse.Namespace) -> int:
    from pathlib import Path

    text = Path(args.file).read_text(encoding="utf-8")
    with _open(args) as he:
        _print(he.push_rules(_actor(), text, Path(args.file).name))
    return 0


def run_report(args: argparse.Namespace) -> int:
    from datetime import date

    from ..errors import LoaxaError

    try:
        start, end = date.fromisoformat(args.start), date.fromisoformat(args.end)
    except ValueError as e:
        raise LoaxaError(f"bad date: {e}", "YYYY-MM-DD") from None
    with _open(args) as he:
        rep = he.report(_actor(), start, end)
        print(he.report_csv(rep) if args.format == "csv" else
              json.dumps(rep, ensure_ascii=False, indent=2), end="")
    return 0


def files_token(path: str | None) -> str:
    """The stream token of `loaxa headend files`: from path (made there, 0600,
    on first use), or a new one."""
    import os
    import secrets

    from ..errors import LoaxaError

    if path is None:
        return secrets.token_hex(16)
    try:
        if not os.path.exists(path):
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(16) + "\n")
        token = open(path).read().strip()
    except OSError as e:
        raise LoaxaError(f"cannot use the token file {path}: {e.strerror}") from None
    if len(token) < 16 or not token.isalnum():
        raise LoaxaError(f"{path} holds no token", "at least 16 letters and digits; "
                         "delete the file to make a new one")
    return token


def run_files(args: argparse.Namespace) -> int:
    import os

    from ..errors import LoaxaError

    if not os.path.isdir(args.dir):
        raise LoaxaError(f"no such folder: {args.dir}")
    fmt = Format(args.codec.upper(), args.rate, args.ptime)
    pair = _tls_pair(args)
    tls = tls_context(*pair) if pair else None
    scheme = "https" if tls else "http"
    token = files_token(args.token_file)

    async def serve() -> None:
        srv = FileServer(args.dir, fmt)
        srv.static = [token]
        port = await srv.start(args.bind, args.http, tls)
        files = {"url": f"{scheme}://HOST:{port}/file/{token}/", "codec": fmt.codec,
                 "rate": fmt.rate}
        print(t("files.ready", dir=args.dir, port=port, files=json.dumps(files)), flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await srv.close()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


def run_stream(args: argparse.Namespace) -> int:
    fmt = Format(args.codec.upper(), args.rate, args.ptime)
    udp = [parse_dest(d) for d in args.udp]
    if not udp and args.http is None:
        from ..errors import LoaxaError

        raise LoaxaError("nowhere to send", "add --udp HOST:PORT and/or --http PORT")

    pair = _tls_pair(args)
    tls = tls_context(*pair) if pair else None
    scheme = "https" if tls else "http"

    def ready(port: int | None) -> None:
        print(t("stream.ready", source=args.source, codec=fmt.codec, rate=fmt.rate,
                ptime=fmt.ptime))
        for host, p in udp:
            print(t("stream.udp", dest=f"{host}:{p}"))
        if args.sdp and udp:
            with open(args.sdp, "w") as f:
                f.write(fmt.sdp(*udp[0]))
            print(t("stream.sdp", path=args.sdp))
        if port is not None:
            sess = fmt.session(transport="http", url=f"{scheme}://HOST:{port}/")
            print(t("stream.http", port=port, session=json.dumps(sess)))
        sys.stdout.flush()

    def progress(st: Stats) -> None:
        if not args.quiet:
            print(t("stream.progress", seconds=st.seconds, clients=st.clients,
                    late=st.late_ms), end="", flush=True)

    st = asyncio.run(stream(args.source, fmt, udp, args.http, args.bind, args.loop,
                            args.wait_clients, tls, ready, progress))
    print(t("stream.done", seconds=st.seconds, packets=st.packets))
    return 0

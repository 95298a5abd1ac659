"""loaxa headend: the commune head-end. `stream` turns a file or station into RTP."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

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
    s.add_argument("--codec", default="DVI4", choices=("PCMU", "PCMA", "L16", "DVI4"),
                   help="payload (default DVI4: 4 bits a sample)")
    s.add_argument("--rate", type=int, default=16000,
                   help="sample rate: 8000 for PCMU/PCMA, 8000/16000 for DVI4, "
                   "8000-48000 for L16 (default 16000)")
    s.add_argument("--ptime", type=int, default=20, help="packet duration in ms (default 20)")
    s.add_argument("--udp", action="append", default=[], metavar="HOST:PORT",
                   help="send RTP to this address (repeatable; multicast groups too)")
    s.add_argument("--http", type=int, metavar="PORT",
                   help="serve the stream to nodes over HTTP on this port (0: any free)")
    s.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate")
    s.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
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
        description="Serve every audio file in DIR over HTTP: a node GETs /file/NAME "
        "(the file's name with or without its extension) and receives that file as RFC "
        "4571 framed RTP in real time, then the end of the response.",
        epilog="Example: loaxa headend files /srv/bulletins --http 8001 (the rules then "
        'say [files] url = "http://HEADEND:8001/file/", codec = "DVI4", rate = 16000)',
    )
    f.add_argument("dir", help="folder of audio files")
    f.add_argument("--http", type=int, required=True, metavar="PORT",
                   help="port to listen on (0: any free)")
    f.add_argument("--codec", default="DVI4", choices=("PCMU", "PCMA", "L16", "DVI4"),
                   help="payload (default DVI4)")
    f.add_argument("--rate", type=int, default=16000, help="sample rate (default 16000)")
    f.add_argument("--ptime", type=int, default=20, help="packet duration in ms (default 20)")
    f.add_argument("--bind", default="0.0.0.0", help="address to listen on")
    f.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate")
    f.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    f.set_defaults(func=run_files)


def run_files(args: argparse.Namespace) -> int:
    import os

    from ..errors import LoaxaError

    if not os.path.isdir(args.dir):
        raise LoaxaError(f"no such folder: {args.dir}")
    fmt = Format(args.codec.upper(), args.rate, args.ptime)
    tls = tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    scheme = "https" if tls else "http"

    async def serve() -> None:
        srv = FileServer(args.dir, fmt)
        port = await srv.start(args.bind, args.http, tls)
        files = {"url": f"{scheme}://HOST:{port}/file/", "codec": fmt.codec, "rate": fmt.rate}
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

    tls = tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
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

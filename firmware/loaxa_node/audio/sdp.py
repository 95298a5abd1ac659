# Stream sessions: the subset of SDP (RFC 4566) that ffmpeg writes with
# -sdp_file, and the equivalent JSON a play command carries. Both become one
# checked dict; errors are ValueError with a sentence naming the bad field.
#
#   {"transport": "udp", "addr": "239.10.0.1", "port": 5004,
#    "codec": "DVI4", "rate": 16000, "pt": 6}
#   {"transport": "http", "url": "http://10.0.0.2:8000/stream/dvi4-16k", ...}
from . import codec as audiocodec

TRANSPORTS = ("udp", "http")


def parse_sdp(text):
    """SDP text -> session dict (not yet checked: pass it to session())."""
    if not isinstance(text, str):
        raise ValueError("sdp must be text")
    out = {"transport": "udp"}  # type: dict
    rtpmap = {}
    pts = None
    for line in text.split("\n"):
        line = line.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        k, v = line[0], line[2:]
        if k == "c":
            parts = v.split()
            if len(parts) != 3 or parts[0] != "IN" or parts[1] != "IP4":
                raise ValueError("sdp c= line: only IN IP4 addresses are supported")
            out["addr"] = parts[2].split("/")[0]  # drop the multicast TTL
        elif k == "m":
            parts = v.split()
            if pts is not None:
                continue  # first media section only
            if len(parts) < 4 or parts[0] != "audio":
                raise ValueError("sdp m= line: need 'audio PORT RTP/AVP PT'")
            if parts[2] != "RTP/AVP":
                raise ValueError("sdp m= line: profile must be RTP/AVP")
            out["port"] = _int(parts[1], "sdp port")
            pts = parts[3:]
        elif k == "a" and v.startswith("rtpmap:"):
            sp = v[7:].split()
            if len(sp) == 2:
                rtpmap[sp[0]] = sp[1]
        elif k == "a" and v.startswith("source-filter:"):
            # RFC 4570: a=source-filter: incl IN IP4 <dest> <src>
            sp = v[14:].split()
            if len(sp) != 5 or sp[0] != "incl" or sp[2] != "IP4":
                raise ValueError("sdp source-filter: only 'incl IN IP4 DEST SRC' is supported")
            out["src"] = sp[4]
        elif k == "a" and v.startswith("ssrc:"):  # RFC 5576
            out["ssrc"] = _int(v[5:].split()[0], "sdp ssrc")
    if pts is None:
        raise ValueError("sdp has no m=audio line")
    for pt in pts:  # the first payload we can decode
        enc = rtpmap.get(pt)
        p = _int(pt, "sdp payload type")
        if enc:
            f = enc.split("/")
            if len(f) > 2 and f[2] != "1":
                continue
            if audiocodec.codec_by_name(f[0]) < 0 or len(f) < 2:
                continue
            out.update(pt=p, codec=f[0].upper(), rate=_int(f[1], "sdp rate"))
            return out
        if p in audiocodec.STATIC_PT:
            c, r = audiocodec.STATIC_PT[p]
            out.update(pt=p, codec=audiocodec.NAMES[c], rate=r)
            return out
    raise ValueError("sdp offers no payload this node decodes (PCMU, PCMA, L16 mono, DVI4)")


def _int(s, what):
    try:
        return int(s)
    except ValueError:
        raise ValueError("%s must be a number, not %r" % (what, s))


def session(obj):
    """Checked session dict from a JSON object or {"sdp": text}."""
    if not isinstance(obj, dict):
        raise ValueError("session must be an object")
    if "sdp" in obj:
        s = parse_sdp(obj["sdp"])
        for k in ("addr", "url", "transport", "src", "ssrc"):  # JSON may override these
            if k in obj:
                s[k] = obj[k]
        obj = s
    t = obj.get("transport", "udp")
    if t not in TRANSPORTS:
        raise ValueError("transport must be one of udp, http")
    name = obj.get("codec")
    codec = audiocodec.codec_by_name(name) if isinstance(name, str) else -1
    if codec < 0:
        raise ValueError("codec must be one of " + ", ".join(audiocodec.NAMES))
    rate = obj.get("rate")
    if rate not in audiocodec.RATES[codec]:
        raise ValueError("rate for %s must be one of %s" % (
            audiocodec.NAMES[codec], ", ".join(str(r) for r in audiocodec.RATES[codec])))
    pt = obj.get("pt")
    if pt is None:
        for p in audiocodec.STATIC_PT:
            if audiocodec.STATIC_PT[p] == (codec, rate):
                pt = p
    if not isinstance(pt, int) or not 0 <= pt <= 127:
        raise ValueError("pt must be a payload type 0-127 (dynamic types need it given)")
    # a=ptime / "ptime" are not needed: the node takes packets of any length
    out = {"transport": t, "codec": audiocodec.NAMES[codec], "rate": rate, "pt": pt}
    if t == "udp":
        port = obj.get("port")
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError("port must be 1-65535")
        addr = obj.get("addr", "0.0.0.0")
        if not isinstance(addr, str) or len(addr.split(".")) != 4:
            raise ValueError("addr must be an IPv4 address")
        out["addr"] = addr
        out["port"] = port
        # the sender a session names: RTP from anyone else is dropped (net/udp.py)
        src = obj.get("src")
        if src is not None:
            if not isinstance(src, str) or len(src.split(".")) != 4 or not all(
                    x.isdigit() and int(x) < 256 for x in src.split(".")):
                raise ValueError("src must be the sender's IPv4 address")
            out["src"] = src
        ssrc = obj.get("ssrc")
        if ssrc is not None:
            if not isinstance(ssrc, int) or isinstance(ssrc, bool) or not 0 <= ssrc < 1 << 32:
                raise ValueError("ssrc must be an integer 0-4294967295")
            out["ssrc"] = ssrc
    else:
        url = obj.get("url")
        if not isinstance(url, str) or not (url.startswith("http://")
                                            or url.startswith("https://")):
            raise ValueError("url must start with http:// or https://")
        out["url"] = url
    return out


# Signed envelope for rules and commands (DESIGN section 5, docs/envelope.md):
#   {"v": 1, "kind": "rules", "from": "headend", "seq": 42, "ts": t2k,
#    "body": {...}, "tag": "<64 hex>"}
# tag = HMAC-SHA256(key, canonical(envelope without "tag")). The canonical
# form is our own encoder (MicroPython's json.dumps has no sort_keys or
# separators), so host and node produce the same bytes from the same value.
# Pure: the host signs with this same module.
import hashlib
from binascii import hexlify, unhexlify

VERSION = 1
FIELDS = ("v", "kind", "from", "seq", "ts", "body", "tag")
_ESC = {'"': '\\"', "\\": "\\\\"}


class EnvelopeError(ValueError):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code
        self.msg = msg


def _enc(x, out):
    if x is None or x is True or x is False:
        out.append("null" if x is None else ("true" if x else "false"))
    elif isinstance(x, int):
        out.append(str(x))
    elif isinstance(x, str):
        out.append('"')
        for c in x:
            if c in _ESC:
                out.append(_ESC[c])
            elif ord(c) < 0x20:
                out.append("\\u%04x" % ord(c))
            else:
                out.append(c)
        out.append('"')
    elif isinstance(x, (list, tuple)):
        out.append("[")
        for i, v in enumerate(x):
            if i:
                out.append(",")
            _enc(v, out)
        out.append("]")
    elif isinstance(x, dict):
        out.append("{")
        for i, k in enumerate(sorted(x)):
            if not isinstance(k, str):
                raise EnvelopeError("bad_body", "object keys must be strings")
            if i:
                out.append(",")
            _enc(k, out)
            out.append(":")
            _enc(x[k], out)
        out.append("}")
    else:
        # floats print differently on the two interpreters: not signable
        raise EnvelopeError("bad_body", "only null, booleans, integers, strings, "
                            "lists and objects can be signed, not %s" % type(x).__name__)


def canonical(x):
    """UTF-8 JSON with sorted keys and no spaces, identical on every interpreter."""
    out = []
    _enc(x, out)
    return "".join(out).encode()


def hmac_sha256(key, msg):
    # RFC 2104 over hashlib: MicroPython has no hmac module.
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key + bytes(64 - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def key_bytes(hexkey):
    return unhexlify(hexkey)


def seal(key, kind, sender, seq, ts, body):
    """The signed envelope (a dict) carrying body."""
    env = {"v": VERSION, "kind": kind, "from": sender, "seq": seq, "ts": ts, "body": body}
    env["tag"] = hexlify(hmac_sha256(key, canonical(env))).decode()
    return env


def _same(a, b):
    # constant time: a wrong tag must not reveal how many bytes matched
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0


def _need(env, k, kind):
    v = env.get(k)
    if not isinstance(v, kind) or isinstance(v, bool):
        raise EnvelopeError("bad_envelope", "field %r must be %s" % (
            k, {int: "an integer", str: "a string", dict: "an object"}[kind]))
    return v


def open_(env, key, kind, last_seq=0, now=None, max_age=None):
    """Verify env and return its body; raise EnvelopeError saying what is wrong.

    last_seq: highest sequence already accepted from this sender for this
    kind (the caller keeps it per sender). now/max_age: when given, also
    refuse a timestamp further than max_age seconds from now.
    """
    if not isinstance(env, dict):
        raise EnvelopeError("bad_envelope", "envelope must be a JSON object")
    for k in env:
        if k not in FIELDS:
            raise EnvelopeError("bad_envelope", "unknown field %r; allowed: %s" % (
                k, ", ".join(FIELDS)))
    for k in FIELDS:
        if k not in env:
            raise EnvelopeError("bad_envelope", "missing field %r" % k)
    if env["v"] != VERSION:
        raise EnvelopeError("bad_envelope", "envelope version %r; this node reads %d" % (
            env["v"], VERSION))
    _need(env, "from", str)
    seq = _need(env, "seq", int)
    ts = _need(env, "ts", int)
    _need(env, "body", dict)
    tag = _need(env, "tag", str)
    if _need(env, "kind", str) != kind:
        raise EnvelopeError("wrong_kind", "envelope holds %r, expected %r" % (env["kind"], kind))
    try:
        got = unhexlify(tag)
    except ValueError:
        got = b""
    signed = dict(env)
    del signed["tag"]
    if not _same(got, hmac_sha256(key, canonical(signed))):
        raise EnvelopeError("bad_signature", "signature does not match: not signed with "
                            "this commune's key, or changed on the way")
    if seq <= last_seq:
        raise EnvelopeError("stale_seq", "sequence %d from %s is not newer than %d "
                            "already accepted (replayed or old)" % (seq, env["from"], last_seq))
    if max_age is not None and now is not None and abs(ts - now) > max_age:
        raise EnvelopeError("stale_ts", "timestamp is %d s away from this node's clock" % (
            ts - now))
    return env["body"]

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


class EnvelopeError(ValueError):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code
        self.msg = msg


def _enc(x, w):
    # w(bytes) receives the encoding piece by piece, so signing streams it
    # into the hash instead of building the whole text in a small heap.
    if x is None or x is True or x is False:
        w(b"null" if x is None else (b"true" if x else b"false"))
    elif isinstance(x, int):
        w(str(x).encode())
    elif isinstance(x, str):
        b = x.encode()
        w(b'"')
        j = 0
        for i in range(len(b)):
            c = b[i]
            if c < 0x20 or c == 0x22 or c == 0x5C:  # UTF-8 multibyte never matches
                w(b[j:i])
                w(b"\\u%04x" % c)
                j = i + 1
        w(b[j:] if j else b)
        w(b'"')
    elif isinstance(x, (list, tuple)):
        w(b"[")
        for i, v in enumerate(x):
            if i:
                w(b",")
            _enc(v, w)
        w(b"]")
    elif isinstance(x, dict):
        w(b"{")
        for i, k in enumerate(sorted(x)):
            if not isinstance(k, str):
                raise EnvelopeError("bad_body", "object keys must be strings")
            if i:
                w(b",")
            _enc(k, w)
            w(b":")
            _enc(x[k], w)
        w(b"}")
    else:
        # floats print differently on the two interpreters: not signable
        raise EnvelopeError("bad_body", "only null, booleans, integers, strings, "
                            "lists and objects can be signed, not %s" % type(x).__name__)


def canonical(x):
    """UTF-8 JSON with sorted keys and no spaces, identical on every interpreter."""
    out = []  # type: list[bytes]
    _enc(x, out.append)
    return b"".join(out)


def mac(key, x):
    """HMAC-SHA256 (RFC 2104, over hashlib: MicroPython has no hmac module) of
    canonical(x), streamed."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key + bytes(64 - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    _enc(x, inner.update)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def key_bytes(hexkey):
    return unhexlify(hexkey)


def seal(key, kind, sender, seq, ts, body):
    """The signed envelope (a dict) carrying body."""
    env = {"v": VERSION, "kind": kind, "from": sender, "seq": seq, "ts": ts, "body": body}
    env["tag"] = hexlify(mac(key, env)).decode()
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
    if not _same(got, mac(key, signed)):
        raise EnvelopeError("bad_signature", "signature does not match: not signed with "
                            "this commune's key, or changed on the way")
    if seq <= last_seq:
        raise EnvelopeError("stale_seq", "sequence %d from %s is not newer than %d "
                            "already accepted (replayed or old)" % (seq, env["from"], last_seq))
    if max_age is not None and now is not None and abs(ts - now) > max_age:
        raise EnvelopeError("stale_ts", "timestamp is %d s away from this node's clock" % (
            ts - now))
    return env["body"]

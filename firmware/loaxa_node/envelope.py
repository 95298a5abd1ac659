# Signed envelope for rules and commands (DESIGN section 5, docs/envelope.md):
#   {"v": 2, "kind": "cmd", "from": "headend", "to": "n1", "seq": 42, "ts": t2k,
#    "exp": t2k, "body": {...}, "tag": "<64 hex>"}
# tag = HMAC-SHA256(node key, canonical(envelope without "tag")): the
# destination, kind and expiry are under the signature. The canonical
# form is our own encoder (MicroPython's json.dumps has no sort_keys or
# separators), so host and node produce the same bytes from the same value.
# Pure: the host signs with this same module.
import hashlib
from binascii import hexlify, unhexlify

VERSION = 2
FIELDS = ("v", "kind", "from", "to", "seq", "ts", "exp", "body", "tag")
MAX_SKEW_S = 300  # a command stamped further ahead of a trusted clock is refused


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


def seal(key, kind, sender, to, seq, ts, exp, body):
    """The signed envelope (a dict) carrying body to node `to`; exp: t2k time
    after which it must not act (0: none, rules only)."""
    env = {"v": VERSION, "kind": kind, "from": sender, "to": to, "seq": seq, "ts": ts,
           "exp": exp, "body": body}
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


def open_(env, key, kind, to, last_seq=0, now=None):
    """Verify env and return its body; raise EnvelopeError saying what is wrong.

    to: this node's id (the envelope must name it). last_seq: highest
    sequence already accepted from this sender for this kind (the caller
    keeps it per sender). now: the node's time when its clock is trusted
    (None otherwise): an expired command, or one stamped more than MAX_SKEW_S
    ahead, is refused; without it only the sequence protects from a replay.
    """
    if not isinstance(env, dict):
        raise EnvelopeError("bad_envelope", "envelope must be a JSON object")
    if env.get("v") == 1 and "tag" in env and "to" not in env:
        raise EnvelopeError("old_envelope", "envelope version 1 (the commune key's) is no "
                            "longer accepted: this node reads version 2, signed with its "
                            "own key; update the head-end or the signing tool")
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
    dest = _need(env, "to", str)
    seq = _need(env, "seq", int)
    ts = _need(env, "ts", int)
    exp = _need(env, "exp", int)
    _need(env, "body", dict)
    tag = _need(env, "tag", str)
    if _need(env, "kind", str) != kind:
        raise EnvelopeError("wrong_kind", "envelope holds %r, expected %r" % (env["kind"], kind))
    if dest != to:
        raise EnvelopeError("wrong_node", "envelope is addressed to %r, this node is %r" % (
            dest, to))
    if kind != "rules" and exp <= ts:
        raise EnvelopeError("bad_envelope", "a command must carry an expiry after its time")
    try:
        got = unhexlify(tag)
    except ValueError:
        got = b""
    signed = dict(env)
    del signed["tag"]
    if not _same(got, mac(key, signed)):
        raise EnvelopeError("bad_signature", "signature does not match: not signed with "
                            "this node's key, or changed on the way")
    if seq <= last_seq:
        raise EnvelopeError("stale_seq", "sequence %d from %s is not newer than %d "
                            "already accepted (replayed or old)" % (seq, env["from"], last_seq))
    if now is not None:
        if exp and now > exp:
            raise EnvelopeError("expired", "expired %d s ago (by this node's clock)" % (
                now - exp))
        if ts - now > MAX_SKEW_S:
            raise EnvelopeError("stale_ts", "timestamp is %d s ahead of this node's clock" % (
                ts - now))
    return env["body"]

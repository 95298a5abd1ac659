# Atomic persistence on the node's flash (DESIGN section 8).
#
# write: data -> NAME.tmp, flush+sync, NAME -> NAME.bak, NAME.tmp -> NAME.
# Each rename is atomic on LittleFS and POSIX, so at any instant either NAME or
# NAME.bak holds a complete copy of the last acknowledged value: a caller
# acknowledges only after write_json() returns.
import json
import os

DATA_DIR = "data"


def path(name):
    return DATA_DIR + "/" + name


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def _remove(p):
    try:
        os.remove(p)
    except OSError:
        pass


def _sync():
    s = getattr(os, "sync", None)
    if s:
        s()


def ensure_dir(d=DATA_DIR):
    if not _exists(d):
        os.mkdir(d)


def write_bytes(name, data):
    write_parts(name, (data,))


def write_parts(name, parts):
    """write_bytes of the parts one after another, without joining them in RAM."""
    p = path(name)
    tmp = p + ".tmp"
    with open(tmp, "wb") as f:
        for d in parts:
            f.write(d.encode() if isinstance(d, str) else d)
        f.flush()
    _sync()
    if _exists(p):
        _remove(p + ".bak")
        os.rename(p, p + ".bak")
    os.rename(tmp, p)
    _sync()


def write_json(name, obj):
    write_bytes(name, json.dumps(obj).encode())


def read_json(name, default=None, check=None):
    """Newest complete copy of NAME that parses (and passes check), else default.

    Returns (value, source) where source is "main", "bak" or "default" so the
    caller can log a fallback.
    """
    p = path(name)
    for src, fn in (("main", p), ("bak", p + ".bak")):
        try:
            with open(fn) as f:
                v = json.loads(f.read())
            if check is not None:
                check(v)
            return v, src
        except (OSError, ValueError, TypeError, KeyError):
            pass
    return default, "default"


def read_lines(name):
    """The lines (without their ends) of the newest complete copy of NAME, or []."""
    p = path(name)
    for fn in (p, p + ".bak"):
        try:
            with open(fn) as f:
                return [ln.rstrip("\n") for ln in f if ln.strip()]
        except OSError:
            pass
    return []


def remove(name):
    p = path(name)
    for fn in (p, p + ".bak", p + ".tmp"):
        _remove(fn)


def append_line(name, line, max_bytes=4096):
    """Append to a small text log; rotates to NAME.1 when it grows past max_bytes."""
    p = path(name)
    try:
        if os.stat(p)[6] > max_bytes:
            _remove(p + ".1")
            os.rename(p, p + ".1")
    except OSError:
        pass
    with open(p, "a") as f:
        f.write(line + "\n")
    _sync()

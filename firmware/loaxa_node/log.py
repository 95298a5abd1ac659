# RAM ring of recent log lines that the console can tail; errors also go to a
# persisted crash log so they survive a reset.
import time

from . import storage

DEBUG = 10
INFO = 20
WARN = 30
ERROR = 40
NAMES = {DEBUG: "debug", INFO: "info", WARN: "warn", ERROR: "error"}
LEVELS = {"debug": DEBUG, "info": INFO, "warn": WARN, "error": ERROR}

_SIZE = 32  # lines; each costs ~100 B of heap on the node
_ring: list = [None] * _SIZE
_next = 0  # total lines ever written; index into ring is _next % _SIZE
_errors: list = [None] * 8
_nerr = 0
echo = True  # print log lines on the console (tools ignore lines without '@')
level = INFO
on_error = None  # on_error(msg): the control plane reports errors as events


def _now():
    return time.ticks_ms() if hasattr(time, "ticks_ms") else int(time.time() * 1000)


def log(lvl, msg):
    global _next, _nerr
    if lvl < level:
        return
    entry = (_next, _now(), lvl, msg)
    _ring[_next % _SIZE] = entry
    _next += 1
    if lvl >= ERROR:
        _errors[_nerr % len(_errors)] = msg
        _nerr += 1
        if on_error is not None:
            on_error(msg)
    if echo:
        print("%d %s %s" % (entry[1], NAMES[lvl], msg))


def debug(msg):
    log(DEBUG, msg)


def info(msg):
    log(INFO, msg)


def warn(msg):
    log(WARN, msg)


def error(msg):
    log(ERROR, msg)


def tail(n=20, min_level=DEBUG, since=None):
    """Last n entries at or above min_level, oldest first, as dicts."""
    out: list = []
    start = max(0, _next - _SIZE)
    if since is not None:
        start = max(start, since)
    for i in range(start, _next):
        e = _ring[i % _SIZE]
        if e[2] >= min_level:
            out.append({"n": e[0], "ms": e[1], "level": NAMES[e[2]], "msg": e[3]})
    return out[-n:]


def last_errors(n=5):
    out = []
    for i in range(max(0, _nerr - len(_errors)), _nerr):
        out.append(_errors[i % len(_errors)])
    return out[-n:]


def crash(msg):
    """Record an unrecoverable error on flash before a reset."""
    error(msg)
    try:
        storage.append_line("crash.log", msg)
    except OSError:
        pass


def crash_log():
    try:
        with open(storage.path("crash.log")) as f:
            return f.read()
    except OSError:
        return ""

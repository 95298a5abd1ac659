# Node configuration schema: defaults, validation with errors that name the key
# and say what is allowed. Pure: the host tools validate with this same module.
#
# Keys are flat, dotted names ("net.type") so that every error and every
# console request names exactly one value.

from .net.link import LINK_TYPES  # resident anyway: the node always has a link manager
from .timeutil import TZ_MIN

NET_TYPES = ("none",) + LINK_TYPES
TOPIC_PREFIX = "loaxa"  # topics: PREFIX/COMMUNE/node/... (control/protocol.py)
LOG_LEVELS = ("debug", "info", "warn", "error")


class ConfigError(ValueError):
    def __init__(self, key, msg):
        super().__init__("%s: %s" % (key, msg))
        self.key = key
        self.msg = msg


# key: (default, kind, a, b). Kinds: "s" a string of at most a characters,
# "i" an integer from a to b, "c" one of the names in a, "id" a name,
# "z" a list of zone names. A table, not per-key closures: it stays in RAM.
SCHEMA = {
    "node_id": ("unset", "id", 0, 0),
    "commune": ("unset", "id", 0, 0),
    "zones": ([], "z", 0, 0),
    "location": ("", "s", 64, 0),
    "volume": (70, "i", 0, 100),
    "net.type": ("none", "c", NET_TYPES, 0),
    "net.ssid": ("", "s", 32, 0),
    "net.password": ("", "s", 64, 0),
    "net.apn": ("", "s", 64, 0),
    "broker.url": ("", "s", 128, 0),
    "topic_prefix": (TOPIC_PREFIX, "id", 0, 0),
    "ntp.server": ("", "s", 64, 0),
    "tz_offset_min": (TZ_MIN, "i", -720, 840),
    "jitter_ms": (180, "i", 20, 2000),
    "amp_hold_s": (5, "i", 0, 600),
    "log_level": ("info", "c", LOG_LEVELS, 0),
}
_NAME = "1-32 letters, digits, '-' or '_'"


def _is_name(v):
    return isinstance(v, str) and 1 <= len(v) <= 32 and all(
        c.isalpha() or c.isdigit() or c in "-_" for c in v)


def _why(kind, a, b, v):
    """What v must be, or None when it is fine."""
    if kind == "s":
        if not isinstance(v, str) or len(v) > a:
            return "a string of at most %d characters" % a
    elif kind == "i":
        if not isinstance(v, int) or isinstance(v, bool) or not a <= v <= b:
            return "an integer from %d to %d" % (a, b)
    elif kind == "c":
        if v not in a:
            return "one of " + ", ".join(a)
    elif kind == "id":
        if not _is_name(v):
            return _NAME
    elif not isinstance(v, list) or len(v) > 16 or not all(_is_name(z) for z in v):
        return "a list of at most 16 zone names (%s)" % _NAME
    return None


# Never shown by config.get or status.
SECRET = ("net.password",)


def defaults():
    return {k: (list(v[0]) if isinstance(v[0], list) else v[0]) for k, v in SCHEMA.items()}


def check_value(key, value):
    spec = SCHEMA.get(key)
    if spec is None:
        raise ConfigError(key, "unknown key; known keys: " + ", ".join(sorted(SCHEMA)))
    why = _why(spec[1], spec[2], spec[3], value)
    if why:
        raise ConfigError(key, "must be " + why)


def merged(current, changes):
    """current updated with changes, validated as a whole; current is untouched."""
    if not isinstance(changes, dict) or not changes:
        raise ConfigError("body", "must be a non-empty object of key: value")
    for k in changes:
        check_value(k, changes[k])
    out = dict(current)
    out.update(changes)
    return out


def load(stored):
    """Defaults overlaid with a stored dict; unknown or invalid stored keys are
    dropped (listed in the second return value) rather than refusing to boot."""
    cfg = defaults()
    dropped = []
    if isinstance(stored, dict):
        for k in stored:
            try:
                check_value(k, stored[k])
                cfg[k] = stored[k]
            except ConfigError:
                dropped.append(k)
    return cfg, dropped


def public(cfg):
    return {k: ("***" if k in SECRET and cfg[k] else cfg[k]) for k in cfg}

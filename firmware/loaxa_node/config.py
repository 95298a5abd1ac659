# Node configuration schema: defaults, validation with errors that name the key
# and say what is allowed. Pure: the host tools validate with this same module.
#
# Keys are flat, dotted names ("net.type") so that every error and every
# console request names exactly one value.

NET_TYPES = ("none", "wifi", "eth", "lte")
LOG_LEVELS = ("debug", "info", "warn", "error")


class ConfigError(ValueError):
    def __init__(self, key, msg):
        super().__init__("%s: %s" % (key, msg))
        self.key = key
        self.msg = msg


def _str(maxlen):
    def check(v):
        if not isinstance(v, str) or len(v) > maxlen:
            return "a string of at most %d characters" % maxlen
    return check


def _ident(v):
    if not isinstance(v, str) or not 1 <= len(v) <= 32:
        return "1-32 letters, digits, '-' or '_'"
    for c in v:
        if not (c.isalpha() or c.isdigit() or c in "-_"):
            return "1-32 letters, digits, '-' or '_'"


def _int(lo, hi):
    def check(v):
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            return "an integer from %d to %d" % (lo, hi)
    return check


def _choice(options):
    def check(v):
        if v not in options:
            return "one of " + ", ".join(options)
    return check


def _zones(v):
    if not isinstance(v, list) or len(v) > 16:
        return "a list of at most 16 zone names"
    for z in v:
        if _ident(z):
            return "a list of zone names (1-32 letters, digits, '-' or '_')"


# key: (default, check)
SCHEMA = {
    "node_id": ("unset", _ident),
    "commune": ("unset", _ident),
    "zones": ([], _zones),
    "location": ("", _str(64)),
    "volume": (70, _int(0, 100)),
    "net.type": ("none", _choice(NET_TYPES)),
    "net.ssid": ("", _str(32)),
    "net.password": ("", _str(64)),
    "net.apn": ("", _str(64)),
    "broker.url": ("", _str(128)),
    "topic_prefix": ("loaxa", _ident),
    "ntp.server": ("", _str(64)),
    "tz_offset_min": (420, _int(-720, 840)),
    "jitter_ms": (180, _int(20, 2000)),
    "amp_hold_s": (5, _int(0, 600)),
    "log_level": ("info", _choice(LOG_LEVELS)),
}

# Never shown by config.get or status.
SECRET = ("net.password",)


def defaults():
    return {k: (list(v[0]) if isinstance(v[0], list) else v[0]) for k, v in SCHEMA.items()}


def check_value(key, value):
    spec = SCHEMA.get(key)
    if spec is None:
        raise ConfigError(key, "unknown key; known keys: " + ", ".join(sorted(SCHEMA)))
    why = spec[1](value)
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

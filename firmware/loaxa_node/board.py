# Board definition schema (boards/*.json). Pure: `loaxa` validates the files
# with it and the node checks its stored copy the same way.

from .net.link import LINK_TYPES

CHIPS = ("esp32", "esp32c3", "esp32s3", "sim")
NETS = LINK_TYPES
SINKS = ("i2s", "wav", "null")
ARCHS = ("xtensawin", "rv32imc", "x64")


class BoardError(ValueError):
    pass


def _need(d, key, kind, where):
    if key not in d:
        raise BoardError("%s: missing %s" % (where, key))
    v = d[key]
    if not isinstance(v, kind) or isinstance(v, bool):
        raise BoardError("%s: %s has the wrong type" % (where, key))
    return v


def validate(b, where="board"):
    if not isinstance(b, dict):
        raise BoardError(where + ": must be a JSON object")
    allowed = ("name", "chip", "description", "heap_kb", "image", "mpy_arch", "net",
               "audio", "pins", "wdt", "eth", "lte")
    for k in b:
        if k not in allowed:
            raise BoardError("%s: unknown key %s; allowed: %s" % (where, k, ", ".join(allowed)))
    _need(b, "name", str, where)
    if _need(b, "chip", str, where) not in CHIPS:
        raise BoardError("%s: chip must be one of %s" % (where, ", ".join(CHIPS)))
    heap = _need(b, "heap_kb", int, where)
    if not 16 <= heap <= 8192:
        raise BoardError(where + ": heap_kb must be from 16 to 8192")
    if _need(b, "mpy_arch", str, where) not in ARCHS:
        raise BoardError("%s: mpy_arch must be one of %s" % (where, ", ".join(ARCHS)))
    for n in _need(b, "net", list, where):
        if n not in NETS:
            raise BoardError("%s: net entries must be among %s" % (where, ", ".join(NETS)))
    audio = _need(b, "audio", dict, where)
    if _need(audio, "sink", str, where + ".audio") not in SINKS:
        raise BoardError("%s.audio: sink must be one of %s" % (where, ", ".join(SINKS)))
    if audio["sink"] == "i2s":
        for k in ("sck", "ws", "sd"):
            _need(_need(audio, "i2s", dict, where + ".audio"), k, int, where + ".audio.i2s")
    if b["chip"] != "sim":
        img = _need(b, "image", dict, where)
        for k in ("version", "file", "sha256", "offset"):
            _need(img, k, str, where + ".image")
        h = img["sha256"]
        if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
            raise BoardError(where + ".image: sha256 must be 64 lowercase hex digits")
    pins = b.get("pins", {})
    if not isinstance(pins, dict) or any(not isinstance(v, int) for v in pins.values()):
        raise BoardError(where + ": pins must map names to GPIO numbers")
    if "eth" in b["net"]:
        _need(b, "eth", dict, where)
    if "lte" in b["net"]:
        lte = _need(b, "lte", dict, where)
        for k in ("uart", "tx", "rx", "baud"):
            _need(lte, k, int, where + ".lte")
        if "pwrkey" in lte:  # optional: without it a silent modem cannot be power-cycled
            _need(lte, "pwrkey", int, where + ".lte")
    return b

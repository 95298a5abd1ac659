# Console commands of the node itself: log, clock, config, PIN, keys, speaker
# test, reboot and factory reset. The node loads this module for a request
# and drops it afterwards (app.COMMANDS): handlers take (node, args).
from .. import config, log, storage, timeutil
from ..console import CmdError, arg

MAX_TONE_S = 30


def log_(node, args):
    n = arg(args, "n", int, 20, 1, 32)
    lvl = args.get("level", "debug")
    if lvl not in log.LEVELS:
        raise CmdError("bad_args", "level must be one of debug, info, warn, error")
    return {"lines": log.tail(n, log.LEVELS[lvl]), "crash": log.crash_log()[-1024:]}


def clock_get(node, args):
    return node.clock.info()


def clock_set(node, args):
    v = args.get("time")
    if isinstance(v, str):
        try:
            t = timeutil.parse_iso(v)
        except ValueError as e:
            raise CmdError("bad_args", str(e))
    elif isinstance(v, int) and not isinstance(v, bool):
        t = v - timeutil.UNIX_OFFSET  # unix seconds
    else:
        raise CmdError("bad_args", 'give {"time": "2026-11-22T17:30:00+07:00"} or unix seconds')
    if not 0 <= t < 0x3FFFFFFF:
        raise CmdError("bad_args", "time out of range (2000-2033)")
    node.clock.set(t, 0, "console")
    log.info("clock set to " + timeutil.iso(t, node.clock.tz_offset_min))
    return node.clock.info()


async def clock_sync(node, args):
    from ..net import sntp
    try:
        rtt = await sntp.sync(node)
    except (OSError, ValueError) as e:
        raise CmdError("sync_failed", "%s: %s" % (node.cfg["ntp.server"] or "ntp.server", e))
    out = node.clock.info()
    out["rtt_ms"] = rtt
    return out


def config_get(node, args):
    pub = config.public(node.cfg)
    keys = args.get("keys")
    if keys is None:
        return pub
    if not isinstance(keys, list):
        raise CmdError("bad_args", "keys must be a list of names")
    out = {}
    for k in keys:
        if k not in pub:
            raise CmdError("unknown_key", "%s: unknown key" % k)
        out[k] = pub[k]
    return out


def config_set(node, args):
    try:
        new = config.merged(node.cfg, args)
    except config.ConfigError as e:
        raise CmdError("bad_config", str(e))
    storage.write_json("config.json", new)
    node.apply_config(new)
    return {"changed": sorted(args)}


def auth(node, args):
    node.auth.login(args.get("pin"))
    return {"authorised": True}


def pin_set(node, args):
    node.auth.set_pin(args.get("pin"))
    return {"pin_set": True}


async def tone(node, args):
    freq = arg(args, "freq", int, 1000, 50, 8000)
    secs = args.get("seconds", 2)
    if not isinstance(secs, (int, float)) or isinstance(secs, bool) \
            or not 0.1 <= secs <= MAX_TONE_S:
        raise CmdError("bad_args", "seconds must be from 0.1 to %d" % MAX_TONE_S)
    vol = arg(args, "volume", int, node.cfg["volume"], 0, 100)
    if node.player is None:
        raise CmdError("safe_mode", "audio is off in safe mode")
    from ..audio.player import tone_maker
    from .arbiter import play
    await play(node, {"source": "tone:%d" % freq, "priority": "test", "codec": "sine"},
               tone_maker(freq, secs), vol)
    return {"freq": freq, "seconds": secs, "volume": vol}


def keys_set(node, args):
    # Keys are written by provisioning and never read back over the console.
    if "commune_key" in args:
        # One key per node (docs/security.md): a key shared by every node of a
        # commune let one node taken from its pole speak through all of them.
        raise CmdError("bad_args", "commune_key is no longer used: every node has only its "
                       "own node_key; re-provision with `loaxa provision`")
    keys, _ = storage.read_json("keys.json", {})
    old = keys.pop("commune_key", None) is not None  # an old node's shared key goes
    given = False
    for name in ("node_key",):
        if name in args:
            k = args[name]
            if not isinstance(k, str) or len(k) != 64 or any(
                    c not in "0123456789abcdef" for c in k):
                raise CmdError("bad_args", name + " must be 64 lowercase hex digits")
            keys[name] = k
            given = True
    pw = args.get("mqtt_password")
    if pw is not None:
        # the node's own broker password (its user name is its node id)
        if not isinstance(pw, str) or not 16 <= len(pw) <= 64 or any(
                not (c.isalpha() or c.isdigit() or c in "-_") for c in pw):
            raise CmdError("bad_args", "mqtt_password must be 16-64 letters, digits, '-' or '_'")
        keys["mqtt_password"] = pw
        given = True
    ca = _broker_ca(args.get("broker_ca"))
    if not given and ca is None:
        raise CmdError("bad_args", "give node_key, mqtt_password and/or broker_ca")
    # everything is checked before anything is written: a bad field changes nothing
    if given or old:
        storage.write_json("keys.json", keys)
    if pw is not None:
        _set_mqtt_password(node, pw)
    if ca is not None:
        _set_broker_ca(node, ca)
    out = {"keys": sorted(keys)}  # type: dict
    if ca is not None:
        out["broker_ca"] = len(ca)
    return out


def _broker_ca(v):
    """The DER bytes of a base64 broker_ca argument ("" removes the pin: b""), or None."""
    if v is None:
        return None
    if not isinstance(v, str):
        raise CmdError("bad_args", "broker_ca must be the CA certificate as base64 DER")
    if not v:
        return b""
    from binascii import a2b_base64
    try:
        der = a2b_base64(v)
    except ValueError:
        der = b""
    # a DER certificate is one SEQUENCE with a two-byte long length (0x30 0x82)
    if len(der) < 64 or der[0] != 0x30 or der[1] != 0x82 or (der[2] << 8 | der[3]) + 4 != len(der):
        raise CmdError("bad_args", "broker_ca is not a DER certificate in base64")
    return der


def _set_mqtt_password(node, pw):
    c = node.control.client if node.control else None
    if c is not None and c.password != pw:  # rotated: connect again with it
        c.password = pw
        c.drop("broker password changed", True)


def _set_broker_ca(node, der):
    from .setup import CA_FILE
    if der:
        storage.write_bytes(CA_FILE, der)
    else:
        storage.remove(CA_FILE)
    c = node.control.client if node.control else None
    if c is not None:  # the next TLS handshake pins the new CA
        c.ca = der or None
        c.drop("broker CA changed", True)


def reboot(node, args):
    node.schedule_reset("console")
    return {"rebooting": True}


def factory_reset(node, args):
    if args.get("confirm") != "ERASE":
        raise CmdError("confirm", 'this erases config, keys, rules and logs; '
                       'send {"pin": "...", "confirm": "ERASE"}')
    if node.auth.has_pin():
        node.auth.login(args.get("pin"))
    for name in node.data_files():
        storage.remove(name)
    node.auth.clear()
    log.warn("factory reset")
    node.schedule_reset("factory_reset")
    return {"erased": True}

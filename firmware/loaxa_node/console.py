# Serial service protocol (DESIGN section 7), one line per request/response:
#   request   @<id> <command> [<json object>]     id: 1-8 letters/digits
#   response  @<id> ok <json>  |  @<id> err {"code": ..., "msg": ...}
# Every other line is a log line. A line that is not a request still gets one
# `@? err` answer so a person typing in a terminal learns the syntax.
import json
import sys

from . import log
from .compat import const

MAX_LINE = const(4096)
# Flow for long lines: after each WINDOW bytes of one line the console has
# taken in, it writes one CREDIT byte, and the host sends no more than WINDOW
# bytes of a line ahead of its credits. The ESP32 port's stdin ring holds 259
# bytes (plus the UART's 128-byte FIFO) and drops what comes beyond while the
# app is busy elsewhere (a flash write, an import): a ~700-byte rules.set line
# lost bytes that way. Short lines get no credit and pay nothing.
WINDOW = const(256)
CREDIT = "\x11"  # XON: harmless to a terminal, never part of a line


class CmdError(Exception):
    def __init__(self, code, msg, rid=None):
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.rid = rid  # set when the request's id was readable


def arg(args, key, kind, default=None, lo=None, hi=None):
    """args[key] checked against kind (and lo..hi), or default; CmdError if bad."""
    v = args.get(key, default)
    if v is None:
        raise CmdError("bad_args", "missing %s" % key)
    if kind is int and isinstance(v, float) and v == int(v):
        v = int(v)
    if not isinstance(v, kind) or isinstance(v, bool):
        raise CmdError("bad_args", "%s must be %s" % (key, kind.__name__))
    if lo is not None and not lo <= v <= hi:
        raise CmdError("bad_args", "%s must be from %s to %s" % (key, lo, hi))
    return v


def request_id(line):
    """The id of a request line (bytes), read before the rest and with a few
    bytes of heap: an answer must carry it even when the node has no room
    left to read the request itself (then it says MemoryError under that id)."""
    if not line.startswith(b"@"):
        raise CmdError("syntax", "requests look like: @1 status  or  @2 config.get {}")
    end = line.find(b" ")
    end = end if end > 0 else len(line)
    ok = 2 <= end <= 9
    # by index: a generator over the id needs a 640-byte block, which a node
    # at its heap cap may not have (then every request failed as "@? err")
    i = 1
    while ok and i < end:
        c = line[i]
        ok = 48 <= c <= 57 or 97 <= c | 32 <= 122  # a digit or an ASCII letter
        i += 1
    if not ok:
        raise CmdError("syntax", "request id must be 1-8 letters or digits")
    return line[1:end].decode()


def parse(line, rid):
    """The rest of a request line after its id -> (command, args dict). Raises CmdError."""
    end = line.find(b" ")
    try:
        rest = line[end + 1:].decode() if end > 0 else ""
    except UnicodeError:
        raise CmdError("syntax", "not text; requests look like: @1 status", rid)
    cmd, _, body = rest.strip().partition(" ")
    if not cmd:
        raise CmdError("syntax", "missing command after @" + rid, rid)
    args = {}
    body = body.strip()
    if body:
        try:
            args = json.loads(body)
        except ValueError:
            raise CmdError("bad_json", "arguments are not valid JSON", rid)
        if not isinstance(args, dict):
            raise CmdError("bad_json", "arguments must be a JSON object", rid)
    return cmd, args


def reply(rid, ok, body):
    # streamed, not built as one string: a status answer is ~1 KB, which a
    # fragmented heap may not have in one piece while audio plays
    sys.stdout.write("@%s %s " % (rid, "ok" if ok else "err"))
    json.dump(body, sys.stdout)
    sys.stdout.write("\n")


class Console:
    """Reads stdin into one preallocated line buffer and dispatches requests."""

    def __init__(self, dispatch, stream=None):
        self.dispatch = dispatch  # async (cmd, args) -> result, raises CmdError
        self.stream = stream
        self._buf = bytearray(MAX_LINE)
        self.requests = 0
        self.rejected = 0

    async def _line(self, reader):
        """Next line as bytes, or None if it was too long (rest discarded)."""
        n = 0
        k = 0  # bytes of this line since the last credit
        over = False
        buf = self._buf
        while True:
            b = await reader.read(1)
            if not b:
                raise OSError("console closed")
            c = b[0]
            if c == 10 or c == 13:
                if over:
                    return None
                return bytes(buf[:n])
            if n < MAX_LINE:
                buf[n] = c
                n += 1
            else:
                over = True
            k += 1
            if k == WINDOW:
                k = 0
                sys.stdout.write(CREDIT)

    async def handle(self, line):
        if line is None:
            self.rejected += 1
            reply("?", False, {"code": "too_long", "msg": "line longer than %d bytes" % MAX_LINE})
            return
        if not line.strip():
            return
        rid = "?"
        try:
            rid = request_id(line)
            cmd, args = parse(line, rid)
            self.requests += 1
            result = await self.dispatch(cmd, args)
            reply(rid, True, {} if result is None else result)
        except CmdError as e:
            self.rejected += 1
            reply(e.rid or rid, False, {"code": e.code, "msg": e.msg})
        except Exception as e:  # a handler bug must not take the node down
            self.rejected += 1
            log.error("console %s: %r" % (rid, e))
            reply(rid, False, {"code": "internal", "msg": repr(e)})

    async def run(self):
        import asyncio
        reader = self.stream or asyncio.StreamReader(sys.stdin.buffer)
        while True:
            await self.handle(await self._line(reader))


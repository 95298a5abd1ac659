"""Deploy the application to a node: only what changed, verified, switched atomically.

Over the raw REPL (raw-paste mode: the device's own flow control) this
1. asks the device for its bytecode version, whether it can inflate, which
   app folder app.ptr names and that folder's manifest (path -> SHA-256);
2. builds the app for that bytecode (appbuild) and names it by its content:
   `app_<first 12 hex of the manifest's SHA-256>`;
3. stages that folder: files the current app already holds are copied on the
   device, the others are sent deflate-compressed (when that is smaller and
   the device has `deflate`) as base64 inside raw-paste programs;
4. hashes every staged file on the device and compares with the manifest;
   node-side steps tick once per file (rawrepl.TICK): that drives the progress
   bar and keeps the session alive, so slow storage (an emulated node's flash)
   takes longer but is never cut off by a fixed wait;
5. only then writes app.ptr atomically (tmp + rename), so a power cut at any
   instant boots either the old app or the complete new one (main.py, the
   boot stub, reads app.ptr);
6. removes app folders other than the new and the previous one.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from . import FIRMWARE
from .appbuild import APP_SRC, build
from .console import NodeConsole
from .errors import LoaxaError
from .progress import Report
from .rawrepl import DeviceError, LinkLost, RawRepl, escape_units

PTR = "app.ptr"
MANIFEST = "manifest.json"
ZLIB_WBITS = 12  # 4 KB inflate window: affordable after the soft reset, and ~12 % smaller
SOLID = ".z"  # the changed files as one zlib stream: they share names and bytecode

# Programs run on the device; short names keep them small on the wire. _BASE
# and _PROBE answer "what is there?"; _HELPERS only go when something changes.
_BASE = r"""
import os,sys,json,binascii as A,hashlib as H
try:
 import deflate as D
except ImportError:
 D=None
B=bytearray(512)
M=memoryview(B)
def tk():
 sys.stdout.write('\x06')
def h(p):
 s=H.sha256()
 with open(p,'rb') as f:
  while 1:
   n=f.readinto(B)
   if not n:break
   s.update(M[:n])
 return A.hexlify(s.digest()).decode()
def x(p):
 try:
  return os.stat(p)[0]
 except OSError:
  return 0
def rd(p):
 try:
  with open(p) as f:return f.read().strip()
 except OSError:return ''
"""

_PROBE = """\
p=rd('app.ptr')
q=p+'/manifest.json'
print(json.dumps({'mpy':getattr(sys.implementation,'_mpy',0),'ptr':p,'inflate':D is not None,
 'man':h(q) if p and x(q) else '','main':h('main.py') if x('main.py') else '',
 'apps':[e for e in os.listdir() if e.startswith('app_')]}))
"""

_HELPERS = r"""
def mk(p):
 q=''
 for c in p.split('/'):
  q=q+c
  if not x(q):os.mkdir(q)
  q=q+'/'
R=memoryview(bytearray(256))
def g(i,n):
 m=0
 while m<n:m+=i.readinto(R[m:n]) or 0
def rx(fs):
 i=sys.stdin.buffer
 t=sum(u for p,u in fs)
 k=0
 if t:sys.stdout.write('\x01')
 for p,u in fs:
  with open(p,'wb') as f:
   for _ in range(u):
    g(i,1)
    n=R[0]
    g(i,n)
    k+=1
    if k<t:sys.stdout.write('\x01')
    d=bytes(R[:n])
    f.write(d if d.find(b'\x1b')<0 else d.replace(b'\x1b\x01',b'\x03').replace(b'\x1b\x02',b'\x1b'))
def ux(r,z,fs):
 with open(r+z,'rb') as i:
  d=D.DeflateIO(i,D.ZLIB)
  for p,n in fs:
   with open(p[1:] if p[0]==':' else r+p,'wb') as q:
    while n:
     k=d.readinto(M[:min(n,512)])
     if not k:raise OSError(5)
     q.write(M[:k])
     n-=k
   tk()
 os.remove(r+z)
def cp(a,b):
 with open(a,'rb') as i,open(b,'wb') as q:
  while 1:
   n=i.readinto(B)
   if not n:break
   q.write(M[:n])
 tk()
def rm(p):
 if x(p)&0x4000:
  for e in os.listdir(p):rm(p+'/'+e)
  os.rmdir(p)
 elif x(p):
  os.remove(p)
  tk()
def t(p):
 tk()
 return h(p) if x(p) else ''
def vf(d,mh,ex):
 b=['manifest.json']
 if t(d+'/manifest.json')==mh:
  b=[k for k,v in json.loads(rd(d+'/manifest.json')).items() if t(d+'/'+k)!=v]
 print(json.dumps(b+[p for p,v in ex if t(p)!=v]))
def hs(d,n):
 print(json.dumps({k:t(d+'/'+k) for k in n}))
def mv(a,b):
 try:
  os.rename(a,b)
 except OSError:
  os.remove(b)
  os.rename(a,b)
 if hasattr(os,'sync'):os.sync()
def sw(p,v):
 with open(p+'.tmp','w') as f:f.write(v)
 mv(p+'.tmp',p)
"""

NODE_WAIT = 60.0  # s of silence from a node-side step before the link counts as lost


def _ignore(_ticks: int) -> None:
    pass


_NOISY = "run loaxa deploy again, with a shorter or better USB cable if it fails again"


@dataclass
class DeployResult:
    app: str
    previous: str
    files: int
    sent: int  # files sent over the wire
    copied: int  # files copied on the device from the previous app
    payload: int  # file bytes before compression
    tx: int  # bytes the host wrote to the port
    rx: int
    seconds: float

    @property
    def unchanged(self) -> bool:
        return self.app == self.previous and self.sent == 0 and self.copied == 0


def manifest_of(files: dict[str, bytes]) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in sorted(files.items())}


def app_name(manifest: dict[str, str]) -> str:
    canon = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return "app_" + hashlib.sha256(canon).hexdigest()[:12]


def _squeezed(code: str) -> str:
    """A program that inflates code and runs it: fewer bytes on a slow link."""
    z = base64.b64encode(zlib.compress(code.encode(), 9)).decode()
    return f"import io\nexec(D.DeflateIO(io.BytesIO(A.a2b_base64({z!r})),D.ZLIB).read())"


def _stream(items: list[tuple[str, bytes]]) -> tuple[str, list[bytes]]:
    """The receiver call for files and the binary units it reads."""
    units: list[bytes] = []
    spec = []
    for path, blob in items:
        mine = escape_units(blob)
        units += mine
        spec.append((path, len(mine)))
    return f"rx({spec!r})", units


def _counted(units: list[bytes], report: Report):
    """Yield units, reporting progress every 16."""
    total = sum(map(len, units)) or 1
    done = 0
    for i, u in enumerate(units):
        yield u
        done += len(u)
        if i % 16 == 15:
            report("send", done / total, f"{done // 1024} KB")


class Deployer:
    """One deploy session on a RawRepl already in the raw REPL."""

    def __init__(self, repl: RawRepl, src: Path = APP_SRC, report: Report | None = None,
                 verify: bool = False):
        self.repl = repl
        self.src = src
        self.verify = verify  # re-hash an app that looks current instead of trusting it
        self.report = report or (lambda label, frac, note: None)

    def _json(self, code: str, stage: str = "", n: int = 0) -> dict:
        out = self._json_any(code, stage, n)
        if not isinstance(out, dict):
            raise LoaxaError(f"the device gave an unexpected answer: {out!r}")
        return out

    def _step(self, code: str, stage: str = "", n: int = 0, feed=()) -> str:
        """Run a helper that ticks once per file (n files) and report its progress.

        No step has a deadline: only NODE_WAIT of silence ends it, and every
        file done is a tick, so an emulated node's slow flash merely takes longer.
        """
        if stage and n:
            self.report(stage, 0.0, f"0/{n}")
        tick = (lambda i: self.report(stage, min(i, n) / n, f"{min(i, n)}/{n}")) if n else None
        return self.repl.exec(code, timeout=NODE_WAIT, feed=feed, tick=tick or _ignore)

    def _json_any(self, code: str, stage: str = "", n: int = 0) -> object:
        out = self._step(code, stage, n).strip().splitlines()
        try:
            return json.loads(out[-1])
        except (IndexError, ValueError):
            raise LoaxaError(f"the device gave an unreadable answer: {out[-3:]!r}") from None

    def run(self) -> DeployResult:
        t0 = time.monotonic()
        self._step(_BASE)
        dev = self._json(_PROBE)
        files = build(self.src, mpy=dev["mpy"])
        manifest = manifest_of(files)
        files[MANIFEST] = json.dumps(manifest, sort_keys=True).encode()
        name = app_name(manifest)
        cur = dev["ptr"]
        main_py = (FIRMWARE / "main.py").read_bytes()
        if hashlib.sha256(main_py).hexdigest() == dev["main"]:
            main_py = b""
        if (name == cur and not main_py and not self.verify
                and dev["man"] == hashlib.sha256(files[MANIFEST]).hexdigest()):
            # Folders are named by content and were verified before the switch.
            return self._result(name, cur, len(manifest), [], [], files, t0)

        self._step(_squeezed(_HELPERS) if dev["inflate"] else _HELPERS)
        cur_man = self._json(f"print(rd({cur + '/' + MANIFEST!r}) or '{{}}')") if cur else {}
        # What the target folder already holds (an interrupted earlier deploy, or
        # the current app under --verify): only what differs is written.
        digests = {**manifest, MANIFEST: hashlib.sha256(files[MANIFEST]).hexdigest()}
        have = (self._json(f"hs({name!r},{sorted(digests)!r})", "check", len(digests))
                if name in dev["apps"] else {})
        missing = [k for k, v in digests.items() if have.get(k) != v]
        to_copy = [k for k in missing if cur != name and cur_man.get(k) == digests[k]]
        to_send = [k for k in missing if k not in to_copy and k != MANIFEST]
        if to_send or to_copy or MANIFEST in missing:
            to_send.append(MANIFEST)  # last in the stream
        dirs = sorted({name + "/" + k.rsplit("/", 1)[0] for k in files if "/" in k} | {name})
        self._step("\n".join(f"mk({d!r})" for d in dirs))
        if to_copy:
            self._step("\n".join(f"cp({cur + '/' + k!r},{name + '/' + k!r})"
                                  for k in to_copy), "copy", len(to_copy))
        items = [(f"{name}/{k}", files[k]) for k in to_send]
        if main_py:
            items.append(("main.py.new", main_py))
        unpack, n_files = "", len(items)
        if items and dev["inflate"]:
            co = zlib.compressobj(9, zlib.DEFLATED, ZLIB_WBITS)
            solid = b"".join(co.compress(b) for _, b in items) + co.flush()
            # paths relative to the folder keep the call short; ':' marks the root
            rel = [(p[len(name) + 1:] if p.startswith(name + "/") else ":" + p, len(b))
                   for p, b in items]
            unpack = f"ux({name + '/'!r},{SOLID!r},{rel!r})"
            items = [(f"{name}/{SOLID}", solid)]
        if items:
            prog, units = _stream(items)
            self._step(prog, feed=_counted(units, self.report))
        self.report("send", 1.0, "")
        if unpack:
            try:
                self._step(unpack, "unpack", n_files)
            except DeviceError as e:  # the stream does not inflate: bytes changed on the way
                raise LoaxaError(f"the data arrived corrupted on the node ({e.msg[-80:]}); "
                                 "the previous app stays active", _NOISY) from None

        # The node checks each file against the manifest, itself checked by hash,
        # and answers only with what is wrong: no hash list crosses the slow link.
        extra = [("main.py.new", hashlib.sha256(main_py).hexdigest())] if main_py else []
        mh = hashlib.sha256(files[MANIFEST]).hexdigest()
        bad = self._json_any(f"vf({name!r},{mh!r},{extra!r})", "verify",
                             len(manifest) + 1 + len(extra))
        if not isinstance(bad, list):
            raise LoaxaError(f"the device gave an unexpected answer: {bad!r}")
        if bad:
            raise LoaxaError(
                f"{len(bad)} file(s) did not verify on the node ({', '.join(bad[:3])}); "
                "the previous app stays active",
                _NOISY + "; if it repeats, the node's flash may be full or failing",
            )
        self.report("verify", 1.0, "ok")
        if main_py:
            self._step("mv('main.py.new','main.py')")
        if cur != name:
            self._step(f"sw('app.ptr',{name!r})")
        keep = {name, cur}
        old = [a for a in dev["apps"] if a not in keep]
        if old:
            self._step("\n".join(f"rm({a!r})" for a in old), "clean", len(files) * len(old))
        return self._result(name, cur, len(manifest), to_send, to_copy, files, t0)

    def _result(self, name, cur, n, sent, copied, files, t0) -> DeployResult:
        return DeployResult(
            app=name, previous=cur, files=n, sent=len([k for k in sent if k != MANIFEST]),
            copied=len(copied), payload=sum(len(v) for k, v in files.items() if k != MANIFEST),
            tx=self.repl.tx, rx=self.repl.rx, seconds=time.monotonic() - t0,
        )


def deploy(con: NodeConsole, src: Path = APP_SRC, report: Report | None = None,
           restart: bool = True, verify: bool = False) -> DeployResult:
    """Deploy over an open console; the app restarts from the new folder after."""
    t0 = time.monotonic()
    port = con.pause()
    try:
        repl = RawRepl(port)
        repl.enter()
        try:
            result = Deployer(repl, src, report, verify).run()
        except LinkLost:
            raise  # nothing to talk to; a node that lost power restarts by itself
        except LoaxaError:
            with contextlib.suppress(LoaxaError):
                repl.exit(soft_reset=True)  # the previous app runs on
            raise
        repl.exit(soft_reset=restart)
    finally:
        con.resume()
    result.tx, result.rx = repl.tx, repl.rx
    result.seconds = time.monotonic() - t0  # the whole session, reset included
    return result

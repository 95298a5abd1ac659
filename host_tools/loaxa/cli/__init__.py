"""`loaxa` command line: one sub-command per job, each in its own module here.

Every sub-command module has register(subparsers), which adds its parser and
sets `func(args) -> int`. Expected failures raise LoaxaError and are printed as
one sentence with a hint; tracebacks are left for bugs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import LoaxaError
from ..i18n import t

SUBCOMMANDS = ("sim", "console", "rules", "flash", "deploy", "provision", "inventory",
               "batch", "ports", "headend", "diag")


def add_port_args(p: argparse.ArgumentParser) -> None:
    """--port and --baud of a command that talks to a node's console."""
    p.add_argument("--port", required=True,
                   help="serial port (loaxa ports lists them) or pyserial URL")
    p.add_argument("--baud", type=int, default=115200, help="console baud rate")


def add_inventory_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inventory", help="inventory file (default $LOAXA_INVENTORY or "
                   "~/.local/share/loaxa/inventory.sqlite)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="loaxa",
        description="Tools for loaxa speaker nodes: simulate, flash, deploy, provision, "
        "diagnose and drive the commune head-end.",
        epilog="Run `loaxa COMMAND --help` for what each command does. "
        "Messages follow $LANG (vi_VN.UTF-8 for Vietnamese).",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LoaxaError as e:
        print(t("error", msg=e), file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        if (e.name or "loaxa").split(".")[0] in ("loaxa", "loaxa_node"):
            raise  # our own module missing is a bug, with its traceback
        # `pip install loaxa` alone has the technicians' tools; the head-end and
        # the rig come with its extras (pyproject.toml)
        err = LoaxaError(t("missing.module", name=e.name), t("missing.module_hint"))
        print(t("error", msg=err), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `loaxa ... | head`: the reader has all it wanted
        # and Python's flush at exit would fail again on the closed pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # what a shell reports for a command ended by SIGPIPE


if __name__ == "__main__":
    sys.exit(main())

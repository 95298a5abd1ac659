"""Field diagnostics over the node's serial console (`loaxa diag`).

Everything here reads what the node says through its service protocol
(docs/console.md) and words it for a technician in their language; the node
itself only ever sends codes and numbers. docs/field-guide.md is the manual.
"""

from __future__ import annotations

from ..console import NodeConsole
from ..errors import LoaxaError, NodeError


def authorise(con: NodeConsole, pin: str | None) -> None:
    """Log in with the service PIN when one is given (a fresh node needs none)."""
    if pin:
        con.request("auth", {"pin": pin})


def mutate(con: NodeConsole, pin: str | None, command: str, args: dict) -> dict:
    """A request that needs the PIN: say so plainly when it is missing."""
    try:
        return con.request(command, args)
    except NodeError as e:
        if e.code == "auth_required" and not pin:
            from ..i18n import t
            raise LoaxaError(t("diag.need_pin"), t("diag.need_pin_hint")) from None
        raise

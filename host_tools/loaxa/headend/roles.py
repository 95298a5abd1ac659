"""Who may do what on the head-end: the roles, each allowed what the one before
it may (docs/headend.md, "Users"). The one list the store, the API's models, the
users page and `loaxa headend user --role` take them from; no dependencies, so
the CLI imports it without the head-end's extra."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

ROLES = ("viewer", "operator", "admin")  # lowest first

if TYPE_CHECKING:
    Role = str
else:
    Role = Literal[ROLES]  # a model field of this type lists them in the OpenAPI description


def allowed(role: str, need: str) -> bool:
    """Roles are ordered: an admin may do what an operator may, an operator
    what a viewer may."""
    return ROLES.index(role) >= ROLES.index(need) if role in ROLES else False

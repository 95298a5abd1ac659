"""Board definitions from boards/*.json, validated by the node's own schema."""

from __future__ import annotations

import json

from loaxa_node.board import BoardError, validate

from . import BOARDS
from .errors import LoaxaError


def names() -> list[str]:
    return sorted(p.stem for p in BOARDS.glob("*.json"))


def load(name: str) -> dict:
    path = BOARDS / f"{name}.json"
    if not path.exists():
        raise LoaxaError(f"unknown board {name!r}", f"known boards: {', '.join(names())}")
    try:
        return validate(json.loads(path.read_text()), where=path.name)
    except (ValueError, BoardError) as e:
        raise LoaxaError(f"board file {path.name} is invalid: {e}") from None

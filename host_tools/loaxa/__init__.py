"""loaxa host tools: flash, deploy, provision, diagnose, simulate, head-end."""

from pathlib import Path

__version__ = "0.1.0"

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
BOARDS = REPO / "boards"

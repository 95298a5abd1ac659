"""loaxa host tools: flash, deploy, provision, diagnose, simulate, head-end."""

from pathlib import Path

__version__ = "0.1.0"

_HERE = Path(__file__).resolve().parent
REPO = _HERE.parents[1]
# A checkout (and an editable install) uses firmware/ and boards/ in place; an
# installed wheel carries them as loaxa/_firmware and loaxa/_boards (pyproject.toml).
if (REPO / "firmware" / "main.py").is_file():
    FIRMWARE, BOARDS = REPO / "firmware", REPO / "boards"
else:
    FIRMWARE, BOARDS = _HERE / "_firmware", _HERE / "_boards"

"""The rule set tests and benches give a node, and how they give it.

A commune that broadcasts 05:30-06:15 every day; a 1 kHz tone at 05:30 stands
in for the provincial relay. The rules HIL tests and the heap bench load the
same set, so what the bench measures is what the tests pin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .console import NodeConsole

MORNING = """
quiet_hours = "21:00-05:00"
[[window]]
name = "morning"
days = "daily"
time = "05:30-06:15"
volume = 60
"""
# the whole rules text, its version left to fill in (str.format)
RULES = 'version = "{version}"' + MORNING + """max_volume = 80
[[schedule]]
name = "bell"
source = "tone:1000"
start = "05:30"
minutes = 1
days = "daily"
"""


def provision(node: NodeConsole, node_id: str, key: str, envelope: dict,
              timeout: float = 10.0) -> dict:
    """The node's name and key (hex), then the rules envelope signed for it."""
    node.request("config.set", {"node_id": node_id}, timeout=timeout)
    node.request("keys.set", {"node_key": key}, timeout=timeout)
    return node.request("rules.set", envelope, timeout=timeout)

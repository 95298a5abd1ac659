"""Repeated failed boots drop the node into safe mode: console, no audio."""

import json

import pytest

from loaxa.errors import NodeError


@pytest.mark.needs("filesystem", "power_cut")
def test_three_failed_boots_mean_safe_mode(node, target, strategy):
    # Three crashes/watchdog resets in a row are on record, as the firmware writes them.
    (target.state / "data" / "boot.json").write_text(json.dumps({"boots": 7, "fails": 3}))
    strategy.transition("on", fresh=True)
    st = node.wait_ready(20)
    assert st["safe_mode"] is True
    assert st["boots"] == 8
    with pytest.raises(NodeError) as e:
        node.request("tone", {"freq": 1000, "seconds": 1})
    assert e.value.code == "safe_mode"
    node.request("config.set", {"volume": 20})  # service still works
    assert node.request("config.get", {"keys": ["volume"]}) == {"volume": 20}


@pytest.mark.needs("filesystem", "power_cut")
def test_power_cuts_are_not_failed_boots(node, strategy):
    for _ in range(4):
        strategy.transition("on", fresh=True)
        assert node.wait_ready(20)["safe_mode"] is False

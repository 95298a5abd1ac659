"""The console must survive anything a serial line can carry."""

import random

import pytest

from loaxa.errors import NodeError


def test_unknown_command_and_bad_json_get_err(node):
    with pytest.raises(NodeError) as e:
        node.request("frobnicate")
    assert e.value.code == "unknown_command" and "status" in e.value.node_msg
    node.write(b"@7 config.get {not json\n")
    m = node.expect(r"^@7 err (.*)$", 5)
    assert '"bad_json"' in m.group(1)
    node.write(b"status\n")  # a person forgetting the @id gets taught the syntax
    assert "@1 status" in node.expect(r"^@\? err (.*)$", 5).group(1)


def test_over_long_line_is_refused_whole(node):
    node.write(b"@9 status " + b"x" * 10000 + b"\n")
    assert '"too_long"' in node.expect(r"^@\? err (.*)$", 10).group(1)
    assert node.request("status")["fw"]


def _noise(rng: random.Random) -> bytes:
    kind = rng.randrange(5)
    # 0x03/0x04 are Ctrl-C/Ctrl-D, which by design leave/restart the app.
    alphabet = bytes(b for b in range(256) if b not in (3, 4, 10, 13))
    if kind == 0:
        return bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 200)))
    if kind == 1:
        return b"@" + bytes(rng.choice(b"abcXYZ0189@ {}\":,") for _ in range(rng.randrange(40)))
    if kind == 2:
        cmd = rng.choice([b"status", b"config.set", b"config.get", b"tone", b"clock.set",
                          b"log", b"auth", b"factory_reset"])
        body = rng.choice([b"", b"{", b"[]", b"{\"volume\": \"x\"}", b"{\"keys\": 5}",
                           b"{\"n\": -1}", b"{\"time\": \"yesterday\"}", b"null", b"{\"pin\": 1}"])
        return b"@f%d %s %s" % (rng.randrange(10**6), cmd, body)
    if kind == 3:
        return bytes(rng.randrange(128, 256) for _ in range(rng.randrange(1, 50)))
    return b"@" + b"9" * rng.randrange(9, 20) + b" status"


def test_ten_thousand_malformed_lines_leave_the_node_answering(node):
    node.request("pin.set", {"pin": "8642"})  # so mutating noise is refused, not applied
    rng = random.Random(20261122)
    before = node.request("config.get")
    batch = []
    for _i in range(10000):
        batch.append(_noise(rng) + b"\n")
        if len(batch) == 200:
            node.write(b"".join(batch))
            batch.clear()
            node.request("version", timeout=30)  # keep the line flowing, not flooding
    st = node.request("status", timeout=30)
    assert st["counters"]["console_rejected"] >= 9000
    assert node.request("config.get") == before
    assert st["reset_cause"] == "power_on"

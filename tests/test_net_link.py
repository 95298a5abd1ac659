"""The link manager's choices, as pure functions (the same module the node runs)."""

from loaxa import boards
from loaxa_node.compat import backoff_ms
from loaxa_node.net.link import BACKOFF_MS, kinds
from loaxa_node.net.modem import csq_signal


def test_a_wired_link_comes_first_then_wifi_only_with_an_ssid():
    poe = boards.load("esp32-poe-lan8720")
    assert kinds(poe, {"net.ssid": "", "net.type": None}) == ["eth"]
    assert kinds(poe, {"net.ssid": "xa", "net.type": None}) == ["eth", "wifi"]
    # a configured type goes first, the rest stay as fallbacks
    assert kinds(poe, {"net.ssid": "xa", "net.type": "wifi"}) == ["wifi", "eth"]


def test_lte_board_falls_back_to_wifi_and_the_sim_uses_the_host():
    lte = boards.load("esp32-lte-sim7600")
    assert kinds(lte, {"net.ssid": "xa", "net.type": None}) == ["wifi", "lte"]
    assert kinds(lte, {"net.ssid": "", "net.type": None}) == ["lte"]
    assert kinds(boards.load("sim"), {"net.ssid": "", "net.type": None}) == ["host"]


def test_backoff_doubles_to_its_cap_and_is_jittered_never_zero():
    lo, cap = BACKOFF_MS
    for fails in range(1, 25):
        hi = min(cap, lo << (fails - 1))
        waits = {backoff_ms(fails, lo, cap) for _ in range(40)}
        assert all(hi // 2 <= w <= hi for w in waits), (fails, waits)
        assert len(waits) > 1  # nodes that lost the same tower do not retry in step
    assert max(backoff_ms(30, lo, cap) for _ in range(40)) <= cap


def test_csq_becomes_dbm_and_unknown_is_none():
    assert csq_signal(0) == {"csq": 0, "dbm": -113}
    assert csq_signal(31) == {"csq": 31, "dbm": -51}
    assert csq_signal(99) is None


def test_backoff_keeps_nothing_on_the_micropython_heap(upy):
    # the link manager and the MQTT client call it for every retry, for months
    r = upy.json("""
import gc, json
from loaxa_node.compat import backoff_ms
i = g = a = backoff_ms(1, 1000, 60000)  # every global exists before the count
gc.collect()
a = gc.mem_alloc()
for i in range(2000):
    backoff_ms(i % 30 + 1, 2000, 300000)
gc.collect()
g = gc.mem_alloc() - a
print(json.dumps({"grown": g, "w": backoff_ms(30, 2000, 300000)}))
""")
    assert r["grown"] == 0 and 150000 <= r["w"] <= 300000, r

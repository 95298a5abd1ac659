"""Who may do what on the broker (loaxa.headend.access, docs/control.md "Broker
credentials and ACLs"): the rules the embedded broker applies and the files
mosquitto reads, from one inventory. The brokers themselves are tested with
simulated nodes in hil_tests/test_control.py."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess

import pytest

from loaxa.headend.access import Access, passwd_hash
from loaxa.inventory import Inventory

P = "loaxa/an-phu/"


@pytest.fixture
def access(tmp_path):
    with Inventory(tmp_path / "inv.sqlite") as inv:
        for n, c in (("n1", "an-phu"), ("n2", "an-phu"), ("b1", "an-binh")):
            inv.record(n, "provision", commune=c)
            inv.new_mqtt_password(n, "node", c)
        return Access.from_inventory(inv, "loaxa", ["an-phu"])


def test_users_are_the_communes_nodes_and_its_two_headend_users(access, tmp_path):
    assert sorted(access.users) == ["headend-cli.an-phu", "headend.an-phu", "n1", "n2"]
    pw = access.users["n1"][0]
    assert len(pw) == 32 and access.check("n1", pw)
    for user, password in (("n1", pw[:-1]), ("n1", None), (None, None), ("n2", pw),
                           ("b1", pw), ("", "")):
        assert not access.check(user, password)
    with Inventory(tmp_path / "inv.sqlite") as inv:  # the head-end users are made once
        again = Access.from_inventory(inv, "loaxa", ["an-phu"])
        assert again.users == access.users
        rotated = inv.new_mqtt_password("n1", "node", "an-phu")
        assert rotated != pw and Access.from_inventory(inv, "loaxa", ["an-phu"]).check(
            "n1", rotated)


@pytest.mark.parametrize("action,topic,ok", [
    ("publish", P + "node/n1/status", True),
    ("publish", P + "node/n1/event", True),
    ("publish", P + "node/n1/cmd", False),
    ("publish", P + "node/n1/rules", False),
    ("publish", P + "node/n2/status", False),
    ("publish", P + "all/cmd", False),
    ("publish", "loaxa/an-binh/node/n1/status", False),
    ("subscribe", P + "node/n1/cmd", True),
    ("subscribe", P + "node/n1/rules", True),
    ("subscribe", P + "node/n1/#", False),
    ("subscribe", P + "node/+/cmd", False),
    ("subscribe", P + "node/n2/cmd", False),
    ("subscribe", P + "node/n1/status", False),
    ("subscribe", "#", False),
    ("subscribe", P + "zone/+/cmd", False),
    ("receive", P + "node/n2/cmd", False),
    ("receive", P + "node/n1/cmd", True),
])
def test_a_node_has_its_own_topics_only(access, action, topic, ok):
    assert access.allowed("n1", action, topic) is ok


def test_the_headend_has_its_communes_tree_and_nobody_else_anything(access):
    for user in ("headend.an-phu", "headend-cli.an-phu"):
        assert access.allowed(user, "publish", P + "node/n2/cmd")
        assert access.allowed(user, "subscribe", P + "node/+/status")
        assert not access.allowed(user, "subscribe", "#")
        assert not access.allowed(user, "publish", "loaxa/an-binh/node/b1/cmd")
    for user in (None, "", "b1", "nobody"):
        assert not access.allowed(user, "receive", P + "node/n1/cmd")


def test_mosquitto_files(access, tmp_path):
    passwd, acl = access.write_files(tmp_path / "out")
    assert oct(passwd.stat().st_mode & 0o777) == oct(acl.stat().st_mode & 0o777) == "0o600"
    lines = dict(line.split(":", 1) for line in passwd.read_text().splitlines())
    assert sorted(lines) == sorted(access.users)
    _, seven, rounds, salt, h = lines["n1"].split("$")
    assert (seven, rounds) == ("7", "101")
    assert base64.b64decode(h) == hashlib.pbkdf2_hmac(
        "sha512", access.users["n1"][0].encode(), base64.b64decode(salt), 101)
    text = acl.read_text()
    assert "pattern write loaxa/an-phu/node/%u/status\n" in text
    assert "pattern read loaxa/an-phu/node/%u/cmd\n" in text
    assert "user headend.an-phu\ntopic readwrite loaxa/an-phu/#\n" in text
    assert "b1" not in passwd.read_text() + text and "an-binh" not in text


@pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="mosquitto_passwd not installed")
def test_our_hashes_are_mosquitto_passwds(tmp_path):
    f = tmp_path / "p"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(f), "u", "s3cret"], check=True)
    theirs = f.read_text().strip().split(":", 1)[1]
    salt = base64.b64decode(theirs.split("$")[3])
    assert passwd_hash("s3cret", salt) == theirs

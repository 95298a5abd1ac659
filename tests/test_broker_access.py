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
    assert "b1" not in lines and "an-binh" not in text  # another commune's node


@pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="mosquitto_passwd not installed")
def test_our_hashes_are_mosquitto_passwds(tmp_path):
    f = tmp_path / "p"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(f), "u", "s3cret"], check=True)
    theirs = f.read_text().strip().split(":", 1)[1]
    salt = base64.b64decode(theirs.split("$")[3])
    assert passwd_hash("s3cret", salt) == theirs


def _cert(tmp, name):
    pem, key = tmp / f"{name}.pem", tmp / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-days", "1",
                    "-keyout", str(key), "-out", str(pem)], check=True, capture_output=True)
    return pem, key


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl makes the test certificate")
def test_the_embedded_brokers_tls_listener(access, tmp_path):
    """serve --mqtt-tls-cert: a node pinning the broker's CA connects over TLS with
    its credentials; another CA, or no password, is refused."""
    import asyncio

    from loaxa.headend.server import EmbeddedBroker, Loop
    from loaxa.provision import read_ca
    from loaxa.rig.process import free_port
    from loaxa_node.net import mqtt as net_mqtt

    pem, key = _cert(tmp_path, "broker")
    other, _ = _cert(tmp_path, "other")
    io = Loop()
    port = free_port()
    b = EmbeddedBroker(io, "127.0.0.1", free_port(), lambda fresh=False: access,
                       (str(pem), str(key)), port).start()
    try:
        assert b.tls_url == f"mqtts://127.0.0.1:{port}"
        url = f"mqtts://localhost:{port}"

        def attempt(ca: bytes, password: str | None) -> net_mqtt.Client:
            async def ignore(t: bytes, p: memoryview, r: int) -> None:
                pass
            c = net_mqtt.Client(url, "loaxa-n1", ignore, [P + "node/n1/cmd"], ca=ca,
                                user="n1", password=password)

            async def go() -> None:
                c.start()
            io.run(go())
            for _ in range(300):
                if c.up or c.error:
                    break
                asyncio.run(asyncio.sleep(0.01))

            async def stop() -> None:
                c.deinit()
            io.run(stop())
            return c

        ok = attempt(read_ca(str(pem)), access.users["n1"][0])
        assert ok.connects == 1 and ok.error is None
        wrong_ca = attempt(read_ca(str(other)), access.users["n1"][0])
        assert not wrong_ca.connects and "certificate" in (wrong_ca.error or ""), wrong_ca.error
        no_pw = attempt(read_ca(str(pem)), None)
        assert not no_pw.connects and "refused the connection" in (no_pw.error or "")
    finally:
        b.stop()
        io.stop()

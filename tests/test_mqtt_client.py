"""The MQTT client's QoS 1 publish (loaxa_node.net.mqtt, the node's and the
head-end's) against a broker played by the test: a PUBACK that queues behind a
burst of commands is not a dead broker, and a publish whose connection ends
before its PUBACK fails instead of counting as sent."""

import asyncio

import pytest

from loaxa_node.net import mqtt as net_mqtt

TIMEOUT = 0.3  # the client's PUBACK timeout, shortened for the test


async def read_packet(r: asyncio.StreamReader) -> tuple[int, bytes]:
    b0 = (await r.readexactly(1))[0]
    n, shift = 0, 0
    while True:
        b = (await r.readexactly(1))[0]
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return b0, await r.readexactly(n)


def publish(topic: bytes, payload: bytes) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic + payload
    assert len(body) < 128
    return bytes([0x30, len(body)]) + body


async def broker(burst: int, answer: bool):
    """On the client's QoS 1 PUBLISH: `burst` commands, one every TIMEOUT / 3,
    then its PUBACK (answer) or the end of the connection."""
    connects = []

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        connects.append(1)
        await read_packet(r)  # CONNECT
        w.write(b"\x20\x02\x00\x00")
        _, sub = await read_packet(r)
        w.write(b"\x90\x03" + sub[:2] + b"\x01")
        while True:
            try:
                b0, body = await read_packet(r)
            except asyncio.IncompleteReadError:
                return
            if b0 >> 4 == 3 and (b0 >> 1) & 3 == 1:
                at = 2 + int.from_bytes(body[:2], "big")
                for i in range(burst):
                    w.write(publish(b"loaxa/c/node/n1/cmd", b"%d" % i))
                    await w.drain()
                    await asyncio.sleep(TIMEOUT / 3)
                if not answer:
                    w.close()
                    return
                w.write(b"\x40\x02" + body[at:at + 2])
                await w.drain()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    return srv, f"mqtt://127.0.0.1:{srv.sockets[0].getsockname()[1]}", connects


async def client_and_publish(burst: int, answer: bool):
    srv, url, connects = await broker(burst, answer)
    handled = []

    async def on_msg(topic, payload, retained):
        handled.append(bytes(payload))

    c = net_mqtt.Client(url, "loaxa-n1", on_msg, ["loaxa/c/node/n1/cmd"])
    c.start()
    try:
        for _ in range(100):
            if c.up:
                break
            await asyncio.sleep(0.02)
        assert c.up, c.error
        try:
            await c.publish("loaxa/c/node/n1/event", b"{}", qos=1)
            outcome = "acked"
        except net_mqtt.LinkError as e:
            outcome = str(e)
        return outcome, handled, len(connects), c.error
    finally:
        c.deinit()
        srv.close()


@pytest.fixture(autouse=True)
def short_timeout(monkeypatch):
    monkeypatch.setattr(net_mqtt, "TIMEOUT_S", TIMEOUT)


def test_a_puback_behind_a_burst_of_commands_keeps_the_connection():
    # ten commands over about three timeouts before the PUBACK: the broker was
    # talking all along, so nothing is dropped and nobody reconnects
    outcome, handled, connects, error = asyncio.run(client_and_publish(10, True))
    assert outcome == "acked", error
    assert handled == [b"%d" % i for i in range(10)]
    assert connects == 1


def test_a_publish_whose_connection_ends_before_its_puback_fails():
    outcome, handled, _, _ = asyncio.run(client_and_publish(2, False))
    assert outcome.startswith("publish failed"), outcome
    assert handled == [b"0", b"1"]

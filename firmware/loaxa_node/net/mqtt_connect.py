# Connecting mqtt.py's Client: TCP (TLS with the pinned CA), CONNECT with
# the last will and the node's credentials, CONNACK, SUBSCRIBE, SUBACK, through
# the client's own interface (attach, send, packet, handle). Loaded for each
# connect and dropped after it (compat.uses): a connected node does not keep
# this code in its heap.
import asyncio

from .mqtt import TIMEOUT_S, LinkError, Refused, len_into

CONNACK_RC = ("accepted", "bad protocol version", "client id rejected", "server unavailable",
              "bad user name or password", "not authorised")


def parse_url(url):
    """'mqtt://host[:port]' or 'mqtts://host[:port]' -> (tls, host, port)"""
    tls = url.startswith("mqtts://")
    if not tls and not url.startswith("mqtt://"):
        raise ValueError("broker url must start with mqtt:// or mqtts://")
    host, _, port = url[8 if tls else 7:].rstrip("/").partition(":")
    if not host:
        raise ValueError("broker url has no host")
    return tls, host, int(port) if port else (8883 if tls else 1883)


def _str(b, s):
    # a UTF-8 string field [1.5.3]: 2-byte length, then the bytes
    if isinstance(s, str):
        s = s.encode()
    b.append(len(s) >> 8)
    b.append(len(s) & 0xFF)
    b.extend(s)


async def _send(c, body, first):
    hdr = bytearray(5)
    hdr[0] = first
    await c.send(memoryview(hdr)[:len_into(hdr, 1, len(body))], body)


async def connect(c):
    tls, host, port = parse_url(c.url)
    kw = {}
    if tls:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = ssl.CERT_REQUIRED  # type: ignore[attr-defined]
        if c.ca:
            ctx.load_verify_locations(cadata=c.ca)
        else:  # the system's CAs where the port has them (the head-end's CPython)
            system = getattr(ctx, "load_default_certs", None)
            if system:
                system()
        kw = {"ssl": ctx, "server_hostname": host}
    c.attach(*await asyncio.wait_for(asyncio.open_connection(host, port, **kw), TIMEOUT_S))
    # CONNECT [3.1]: protocol name, level 4, flags, keepalive; client id, will
    body = bytearray(b"\x00\x04MQTT\x04\x00")
    flags = 0x02 if c.clean else 0
    body.append(c.keepalive >> 8)
    body.append(c.keepalive & 0xFF)
    _str(body, c.client_id)
    if c.will:
        topic, msg, retain, qos = c.will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        _str(body, topic)
        _str(body, msg)
    if c.user:
        flags |= 0x80  # [3.1.2.8]; a password only with a user name [3.1.2.9]
        _str(body, c.user)
        if c.password:
            flags |= 0x40
            _str(body, c.password)
    body[7] = flags
    await _send(c, body, 0x10)
    b0, n = await asyncio.wait_for(c.packet(), TIMEOUT_S)  # type: ignore[var-annotated]
    if b0 != 0x20 or n != 2:
        raise LinkError("broker did not answer CONNECT with CONNACK")
    rc = c.buf[1]
    if rc:
        raise Refused("broker refused the connection: " + (
            CONNACK_RC[rc] if rc < len(CONNACK_RC) else "code %d" % rc))
    if c.subs:
        # SUBSCRIBE [3.8] at QoS 1
        body = bytearray(2)
        pid = c.next_pid()
        body[0] = pid >> 8
        body[1] = pid & 0xFF
        for t in c.subs:
            _str(body, t)
            body.append(1)
        await _send(c, body, 0x82)
        await _suback(c, pid)


async def _suback(c, pid):
    # Connected only once every subscription is granted: a node whose
    # subscriptions were refused (0x80, an ACL) hears nothing, so it must not
    # count itself connected (issue 18). A kept session may deliver queued
    # messages before the SUBACK; they are handled as the receive loop would.
    while True:
        b0, n = await asyncio.wait_for(c.packet(), TIMEOUT_S)  # type: ignore[var-annotated]
        if b0 >> 4 != 9:
            await c.handle(b0, n)
            continue
        buf = c.buf
        if n != 2 + len(c.subs) or (buf[0] << 8 | buf[1]) != pid:
            raise LinkError("broker answered SUBSCRIBE with a wrong SUBACK")
        for i in range(len(c.subs)):
            if buf[2 + i] == 0x80:  # [3.9.3]
                raise Refused("broker refused the subscription to " + c.subs[i])
        return

# SNTP client (RFC 4330; packet of RFC 5905 section 7.3) for the clock trust
# of DESIGN section 6: a sync makes the clock trusted for clock.TRUST_S.
# The head-end may answer it, so `ntp.server` is "host" or "host:port".
import asyncio
import os
import struct
import time

from .. import log

NTP_2000 = 3155673600  # NTP seconds (from 1900) at 2000-01-01, the node's epoch
TIMEOUT_MS = 2000
RESYNC_S = 3600
RETRY_S = (5, 600)  # first and longest wait after a failed sync


def _ms(frac):
    return (frac * 1000) >> 32


async def query(server, timeout_ms=TIMEOUT_MS):
    """Ask server for the time: (t2k, ms, round trip ms) of now, corrected by
    half the round trip. Raises OSError (no answer) or ValueError (bad answer)."""
    import errno
    import socket
    host, _, port = server.rpartition(":")
    if not host or not port.isdigit():
        host, port = server, "123"
    ai = socket.getaddrinfo(host, int(port), 0, socket.SOCK_DGRAM)
    if not ai:
        raise OSError("cannot resolve " + host)
    addr = ai[0][-1]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        pkt = bytearray(48)
        pkt[0] = 0x23  # LI 0, version 4, mode 3 (client)
        # our transmit timestamp comes back as "originate": a random cookie
        # ties the answer to this request (RFC 5905 section 8, bogus packets)
        pkt[40:48] = os.urandom(8)
        t1 = time.ticks_ms()
        s.sendto(pkt, addr)
        while True:
            try:
                data = s.recv(64)
                t4 = time.ticks_ms()
                if len(data) >= 48 and data[24:32] == pkt[40:48]:
                    break
            except OSError as e:
                if e.args[0] != errno.EAGAIN:
                    raise
            if time.ticks_diff(time.ticks_ms(), t1) > timeout_ms:
                raise OSError("no answer within %d ms" % timeout_ms)
            await asyncio.sleep_ms(2)
    finally:
        s.close()
    li, mode, stratum = data[0] >> 6, data[0] & 7, data[1]
    if mode != 4 or stratum == 0 or stratum > 15 or li == 3:
        raise ValueError("server is not synchronised (mode %d, stratum %d)" % (mode, stratum))
    t2s, t2f, t3s, t3f = struct.unpack(">IIII", data[32:48])
    held = (t3s - t2s) * 1000 + _ms(t3f) - _ms(t2f)  # time the server held our packet
    rtt = time.ticks_diff(t4, t1) - held
    if rtt < 0 or held < 0:
        raise ValueError("inconsistent timestamps")
    # the answer left the server at T3 and spent about half the round trip on
    # the way back; add what passed here since it arrived
    ms = _ms(t3f) + rtt // 2 + time.ticks_diff(time.ticks_ms(), t4)
    t = t3s - NTP_2000 + ms // 1000
    if not 0 <= t < 0x3FFFFFFF:
        raise ValueError("time out of range (2000-2033)")
    return t, ms % 1000, rtt


async def sync(node):
    server = node.cfg["ntp.server"]
    if not server:
        raise ValueError("no ntp.server configured")
    t, ms, rtt = await query(server)
    node.clock.set(t, ms, "sntp")
    log.info("clock synced from %s (round trip %d ms)" % (server, rtt))
    return rtt


async def run(node):
    """Keep the clock synced while a server is configured and the link is up."""
    wait = 0
    while True:
        if node.cfg["ntp.server"] and node.link.is_up():
            try:
                await sync(node)
                wait = RESYNC_S
            except (OSError, ValueError) as e:
                wait = min(max(wait * 2, RETRY_S[0]), RETRY_S[1])
                log.warn("sntp %s: %s; retry in %d s" % (node.cfg["ntp.server"], e, wait))
        else:
            wait = RETRY_S[0]  # look again soon: config may name a server
        await asyncio.sleep(wait + os.urandom(1)[0] % 4)  # jitter: nodes do not sync in step

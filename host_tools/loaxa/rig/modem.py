"""The rig's LTE modem: an AT responder that a node's UART reaches over TCP.

It listens on a loopback port. QEMU's UART1 (`-serial tcp:127.0.0.1:PORT`) or
the sim HAL's modem socket (`LOAXA_MODEM=127.0.0.1:PORT`) connects to it; one
connection is one power-on of the modem, so a power cycle through the node's
pwrkey shows here as a new connection. It answers the dialogue an SIM7600 does
(AT, ATE0, AT+CPIN?, AT+CSQ, AT+CREG?/AT+CEREG?, AT+CGDCONT, ATD*99#) and after
CONNECT hands the line to slirp in PPP mode (Debian's `slirp` package): the node
then reaches the host as 10.0.2.2 and `redirects` reach the node (10.0.2.15).
With ppp=False (the sim, whose traffic uses the host's network) the line stays
idle in data mode until the carrier drops.

Faults the tests set: `fault = "nosim" | "noreg"` (refusals that last across
power cycles), `hang()` (this power-on stops answering until the next one;
`silent_power_ons = N`: so do the first N),
`drop_carrier()` (PPP is ended from the network side: LCP Terminate-Request,
then NO CARRIER, back in command mode).
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import termios
import threading
import time
import tty

from .targets import Unavailable

GUEST = "10.0.2.15"  # what slirp gives the PPP peer
HOST = "10.0.2.2"  # the host as the node sees it (slirp's own address)
ESCAPE_GUARD_S = 1.0  # Hayes "+++": this much silence before it


def _fcs16(data: bytes) -> int:
    """PPP frame check sequence (RFC 1662 appendix C)."""
    fcs = 0xFFFF
    for b in data:
        fcs ^= b
        for _ in range(8):
            fcs = (fcs >> 1) ^ 0x8408 if fcs & 1 else fcs >> 1
    return fcs ^ 0xFFFF


def hdlc_frame(payload: bytes) -> bytes:
    """payload (address, control, protocol, information) in RFC 1662 framing,
    every control character escaped (the default ACCM)."""
    fcs = _fcs16(payload)
    out = bytearray(b"\x7e")
    for b in payload + bytes([fcs & 0xFF, fcs >> 8]):
        if b in (0x7E, 0x7D) or b < 0x20:
            out += bytes([0x7D, b ^ 0x20])
        else:
            out.append(b)
    return bytes(out + b"\x7e")


# LCP Terminate-Request (RFC 1661 section 5.5), what the network side sends
# when it ends the session
LCP_TERMINATE = hdlc_frame(b"\xff\x03\xc0\x21\x05\x01\x00\x04")


def slirp_command(redirects: list[tuple[str, int, int]]) -> list[str]:
    """slirp as a PPP peer. It takes its own address from the hostname and
    refuses loopback, so it runs in its own UTS namespace named 10.0.2.2;
    `slirp-fullbolt`, as plain `slirp` exits after "SLiRP Ready"
    (measured; docs/network.md)."""
    exe = shutil.which("slirp-fullbolt")
    if not exe:
        raise Unavailable("slirp-fullbolt not found (apt-get install slirp; "
                          "scripts/sysdeps.sh does it as root)")
    ns = ["unshare", "-u"] if os.geteuid() == 0 else ["unshare", "-r", "-u"]
    # "dns 127.0.0.1": slirp relays DNS nowhere; the node uses numeric addresses
    args = [exe, "ppp", "dns 127.0.0.1", "nozeros", "mtu 1500", "mru 1500"]
    args += [f"redir {proto} {hp} to {GUEST}:{gp}" for proto, hp, gp in redirects]
    return [*ns, "sh", "-c", f'hostname {HOST} && exec "$@"', "sh", *args]


class RigModem:
    def __init__(self, *, ppp: bool = True, redirects: list[tuple[str, int, int]] | None = None,
                 csq: int = 20, log_path: str | os.PathLike | None = None):
        self.ppp = ppp
        self.redirects = list(redirects or [])
        if ppp:
            slirp_command(self.redirects)  # fail early, naming what is missing
        self.csq = csq
        self.fault: str | None = None  # "nosim" | "noreg"
        self.silent_power_ons = 0  # the first N power-ons never answer (a hung modem)
        self.power_ons = 0
        self.dials = 0
        self.apn: str | None = None
        self.commands: list[str] = []
        self.bytes_to_node = 0  # in data mode
        self.bytes_from_node = 0
        self.data_mode = False
        self._log = open(log_path, "ab") if log_path else None  # noqa: SIM115
        self._srv = socket.create_server(("127.0.0.1", 0))
        self.port = self._srv.getsockname()[1]
        self._conn: socket.socket | None = None
        self._hung = False
        self._drop = threading.Event()
        self._lock = threading.Lock()
        self._stop = False
        self._slirp: subprocess.Popen | None = None
        self._thread = threading.Thread(target=self._serve, name="rig-modem", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- what tests do --------------------------------------------------------
    def hang(self) -> None:
        """The modem hangs up and stops answering until it is powered off and on."""
        if self.data_mode:
            self.drop_carrier()
            self.wait(lambda: not self.data_mode, 5, "end of data mode")
        self._hung = True

    def drop_carrier(self) -> None:
        self._drop.set()

    def wait(self, pred, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError(f"rig modem: {what} not within {timeout} s "
                                     f"(commands: {self.commands[-12:]})")
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop = True
        self._srv.close()
        with self._lock:
            if self._conn:
                self._conn.close()
        self._end_slirp()
        self._thread.join(3)
        if self._log:
            self._log.close()

    def __enter__(self) -> RigModem:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the line ---------------------------------------------------------------
    def _note(self, text: str) -> None:
        if self._log:
            self._log.write(f"{time.time():.3f} {text}\n".encode())
            self._log.flush()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._srv.accept()
            except OSError:
                return
            with self._lock:
                if self._conn:
                    self._conn.close()  # a new power-on ends the old one
                self._conn = conn
            self.power_ons += 1
            self._hung = self.power_ons <= self.silent_power_ons
            self._drop.clear()
            self._note(f"power on #{self.power_ons}")
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        echo = True
        line = bytearray()
        try:
            while not self._stop:
                r, _, _ = select.select([conn], [], [], 0.1)
                if not r:
                    continue
                data = conn.recv(4096)
                if not data:
                    break
                if self._hung:
                    continue
                if echo:
                    conn.sendall(data)
                for b in data:
                    if b == 13:
                        cmd = line.decode(errors="replace").strip()
                        line.clear()
                        if cmd:
                            echo = self._command(conn, cmd, echo)
                    elif b != 10:
                        line.append(b)
        except OSError:
            pass
        finally:
            self._note("power off")
            self._end_slirp()
            conn.close()

    def _reply(self, conn: socket.socket, *lines: str) -> None:
        conn.sendall(b"".join(b"\r\n" + ln.encode() + b"\r\n" for ln in lines))

    def _command(self, conn: socket.socket, cmd: str, echo: bool) -> bool:
        self.commands.append(cmd)
        self._note("< " + cmd)
        up = cmd.upper()
        if up in ("AT", "ATH", "AT&F") or up.startswith("ATE"):
            self._reply(conn, "OK")
            return up != "ATE0" if up.startswith("ATE") else echo
        if up == "AT+CPIN?":
            if self.fault == "nosim":
                self._reply(conn, "+CME ERROR: 10")  # SIM not inserted (TS 27.007 9.2)
            else:
                self._reply(conn, "+CPIN: READY", "OK")
        elif up == "AT+CSQ":
            self._reply(conn, f"+CSQ: {self.csq},99", "OK")
        elif up in ("AT+CREG?", "AT+CEREG?"):
            stat = 3 if self.fault == "noreg" else 1  # 3: registration denied
            self._reply(conn, f"{up[2:-1]}: 0,{stat}", "OK")
        elif up.startswith("AT+CGDCONT="):
            parts = cmd.split(",")
            self.apn = parts[2].strip('"') if len(parts) > 2 else ""
            self._reply(conn, "OK")
        elif up.startswith("ATD*99"):
            self.dials += 1
            self._reply(conn, "CONNECT 150000000")
            self._online(conn)
            if not self._stop:
                self._reply(conn, "NO CARRIER")
        else:
            self._reply(conn, "ERROR")
        return echo

    # -- data mode --------------------------------------------------------------
    def _online(self, conn: socket.socket) -> None:
        self._drop.clear()
        self.data_mode = True
        self._note("data mode")
        master = self._start_slirp() if self.ppp else None
        quiet_since = time.monotonic()
        why = "?"
        try:
            while not self._stop:
                if self._drop.is_set():
                    if master is not None:
                        conn.sendall(LCP_TERMINATE)
                    why = "carrier dropped by the rig"
                    break
                fds = [conn] + ([master] if master is not None else [])
                r, _, _ = select.select(fds, [], [], 0.05)
                if conn in r:
                    data = conn.recv(4096)
                    if not data:
                        raise OSError("line closed")
                    now = time.monotonic()
                    if data == b"+++" and now - quiet_since >= ESCAPE_GUARD_S:
                        time.sleep(ESCAPE_GUARD_S)
                        self._reply(conn, "OK")
                        why = "escape"
                        return
                    quiet_since = now
                    self.bytes_from_node += len(data)
                    if master is not None:
                        os.write(master, data)
                if master is not None and master in r:
                    try:
                        data = os.read(master, 4096)
                    except OSError:
                        data = b""
                    if not data:
                        why = "slirp ended"
                        break
                    self.bytes_to_node += len(data)
                    conn.sendall(data)
        finally:
            self.data_mode = False
            self._note(f"command mode ({why})")
            self._end_slirp()
            if master is not None:
                os.close(master)

    def _start_slirp(self) -> int:
        master, slave = pty.openpty()
        tty.setraw(slave)

        def own_tty() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        err = self._log if self._log else subprocess.DEVNULL
        self._slirp = subprocess.Popen(slirp_command(self.redirects), stdin=slave,
                                       stdout=slave, stderr=err, preexec_fn=own_tty,
                                       close_fds=True)
        os.close(slave)
        return master

    def _end_slirp(self) -> None:
        p, self._slirp = self._slirp, None
        if p and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(2)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def main(argv: list[str] | None = None) -> None:
    """Run the rig's modem by hand: `python -m loaxa.rig.modem [--no-ppp]
    [--redir udp:HOSTPORT:GUESTPORT ...]`, then point QEMU's UART1 or
    LOAXA_MODEM at the port it prints."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m loaxa.rig.modem")
    ap.add_argument("--no-ppp", action="store_true", help="stay idle in data mode (the sim)")
    ap.add_argument("--redir", action="append", default=[], metavar="PROTO:HOSTPORT:GUESTPORT")
    ap.add_argument("--log", default=None)
    a = ap.parse_args(argv)
    redirs = []
    for r in a.redir:
        proto, hp, gp = r.split(":")
        redirs.append((proto, int(hp), int(gp)))
    with RigModem(ppp=not a.no_ppp, redirects=redirs, log_path=a.log or None) as m:
        print(f"rig modem on {m.address} (Ctrl-C ends it)", flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

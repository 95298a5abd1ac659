# Hardware abstraction: one interface, one implementation per platform.
# The board definition (boards/*.json, stored on the node as data/board.json)
# says which hardware exists; the firmware never touches a radio, MAC or pin
# that the board does not declare (QEMU crashes on an undeclared one).
import sys


class Hal:
    """What the application may ask of the hardware. Times are t2k seconds."""

    name = "none"

    def __init__(self, board):
        self.board = board

    def unique_id(self):
        raise NotImplementedError

    def reset_cause(self):
        """power_on | hard | soft | watchdog | brownout | deepsleep | unknown"""
        raise NotImplementedError

    def reset(self):
        raise NotImplementedError

    def rtc_now(self):
        """(t2k seconds, milliseconds) from the real-time clock."""
        raise NotImplementedError

    def rtc_set(self, t, ms=0):
        raise NotImplementedError

    def rtc_memory(self, data=None):
        """Bytes kept across soft and watchdog resets, lost on power loss."""
        raise NotImplementedError

    def wdt_start(self, timeout_ms):
        pass

    def wdt_feed(self):
        pass

    def led(self, on):
        pass

    def amp(self, on):
        pass

    def amp_fault(self):
        """What the board senses on the amplifier and speaker line: None when it
        cannot sense, False when all is well, else the fault ("fault", "short",
        "open", "thermal")."""
        return None

    def button(self):
        return False

    def temperature(self):
        return None

    # Links: a port HAL defines only those its boards can declare (each
    # method costs heap on every node): host_link() (sim: a net/link.py driver
    # for the host's network), wlan() (STA_IF only), lan(), and for "lte"
    # modem_uart(lte) (readinto -> None when empty, write), modem_pwrkey(lte,
    # pressed) and ppp(uart) (network.PPP's v1.23 API).

    def audio_sink(self):
        """A sink object (see audio/sink_null.py) for this board's audio output."""
        raise NotImplementedError


def load(board):
    if sys.platform in ("esp32",):
        from .esp32 import Esp32Hal
        return Esp32Hal(board)
    from .sim import SimHal
    return SimHal(board)

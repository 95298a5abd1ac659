# Service PIN for mutating console commands, with a lockout that grows after
# repeated failures. The failure count is persisted so that power-cycling the
# node does not reset the lockout.
import binascii
import hashlib
import os
import time

from . import storage
from .console import CmdError

FREE_TRIES = 3
BASE_LOCK_S = 30
MAX_LOCK_S = 3600
SESSION_S = 600  # an authorised console stays so for 10 min after the last use

FILE = "auth.json"


def _hash(salt, pin):
    return binascii.hexlify(hashlib.sha256(salt + pin.encode()).digest()).decode()


def _check_pin_format(pin):
    if not isinstance(pin, str) or not 4 <= len(pin) <= 12 or not pin.isdigit():
        raise CmdError("bad_args", "pin must be 4-12 digits")


class Auth:
    def __init__(self):
        st, _ = storage.read_json(FILE, {})
        self.salt = st.get("salt", "")
        self.hash = st.get("hash", "")
        self.fails = st.get("fails", 0)
        self._until = time.ticks_ms()
        self._session = None  # ticks_ms of last authorised use
        if self.fails >= FREE_TRIES:
            self._lock()

    def _save(self):
        storage.write_json(FILE, {"salt": self.salt, "hash": self.hash, "fails": self.fails})

    def _lock(self):
        delay = min(MAX_LOCK_S, BASE_LOCK_S << (self.fails - FREE_TRIES))
        self._until = time.ticks_add(time.ticks_ms(), delay * 1000)

    def has_pin(self):
        return bool(self.hash)

    def locked_for(self):
        if self.fails < FREE_TRIES:
            return 0
        left = time.ticks_diff(self._until, time.ticks_ms())
        return (left + 999) // 1000 if left > 0 else 0

    def login(self, pin):
        wait = self.locked_for()
        if wait:
            raise CmdError("locked", "too many wrong PINs; try again in %d s" % wait)
        if not self.has_pin():
            self._session = time.ticks_ms()
            return
        if isinstance(pin, str) and _hash(binascii.unhexlify(self.salt), pin) == self.hash:
            if self.fails:
                self.fails = 0
                self._save()
            self._session = time.ticks_ms()
            return
        self.fails += 1
        self._save()
        self._session = None
        if self.fails >= FREE_TRIES:
            self._lock()
            raise CmdError("locked", "wrong PIN; locked for %d s" % self.locked_for())
        raise CmdError("bad_pin", "wrong PIN; %d tries left" % (FREE_TRIES - self.fails))

    def logout(self):
        self._session = None

    def authorised(self):
        """True if mutating commands may run now (and extends the session)."""
        if not self.has_pin():
            return True
        if self._session is None:
            return False
        if time.ticks_diff(time.ticks_ms(), self._session) > SESSION_S * 1000:
            self._session = None
            return False
        self._session = time.ticks_ms()
        return True

    def set_pin(self, pin):
        _check_pin_format(pin)
        salt = os.urandom(8)
        self.salt = binascii.hexlify(salt).decode()
        self.hash = _hash(salt, pin)
        self.fails = 0
        self._save()
        self._session = time.ticks_ms()  # whoever set the PIN knows it

    def clear(self):
        self.salt = self.hash = ""
        self.fails = 0
        self._session = None

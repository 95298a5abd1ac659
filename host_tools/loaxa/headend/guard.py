"""Logins that cannot be guessed or used to stall the head-end (docs/headend.md,
"Logins").

Failures are counted per user name and per client address in sliding windows.
A name that fails USER_MAX times within USER_WINDOW_S is locked for LOCK_S: the
lockout is kept in the store (an admin lifts it with the API or
`loaxa headend user NAME --unlock`, audited) and refuses even the right password
until it ends. An address that fails ADDR_MAX times within ADDR_WINDOW_S is
answered 429 until its oldest failure leaves the window (addresses are not
locked: a commune office shares one). Password hashes (argon2id, 64 MiB each)
run on one thread of their own with at most QUEUE waiting; a login beyond that
is answered 429 at once, so a flood of logins costs at most one core and never
a thread of the pool that serves broadcasts and emergencies.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .store import Store


@dataclass
class Refused:
    """A login refused before or after its hash: why, and for a 429 how long to wait."""

    why: str  # "wrong" (401), "locked", "throttled", "busy" (429)
    retry_after: int = 0


class LoginGuard:
    USER_MAX = 5
    USER_WINDOW_S = 900.0
    LOCK_S = 900.0
    ADDR_MAX = 10
    ADDR_WINDOW_S = 300.0
    QUEUE = 4  # logins waiting for the hashing thread; more are answered 429 at once
    MAX_KEYS = 10_000  # names and addresses tracked; the oldest are forgotten

    def __init__(self, store: Store):
        self.store = store
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="headend-login")
        self._lock = threading.Lock()
        self._users: dict[str, deque[float]] = {}
        self._addrs: dict[str, deque[float]] = {}
        self._waiting = 0

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _recent(q: deque[float], window: float, now: float) -> deque[float]:
        while q and q[0] <= now - window:
            q.popleft()
        return q

    def _note(self, table: dict[str, deque[float]], key: str, now: float) -> deque[float]:
        if key not in table and len(table) >= self.MAX_KEYS:
            table.pop(next(iter(table)))
        q = table.setdefault(key, deque())
        q.append(now)
        return q

    def address_wait(self, addr: str) -> int:
        """Seconds an address must wait before it may try again (0: it may)."""
        now = time.time()
        with self._lock:
            q = self._recent(self._addrs.get(addr, deque()), self.ADDR_WINDOW_S, now)
            if len(q) < self.ADDR_MAX:
                return 0
            return max(1, int(q[-self.ADDR_MAX] + self.ADDR_WINDOW_S - now + 0.999))

    async def login(self, user: str, password: str, addr: str) -> tuple[str, str] | Refused:
        """(session token, role), or why not: checked on the hashing thread, each
        failure audited, a lockout recorded once."""
        wait = self.address_wait(addr)
        if wait:
            return Refused("throttled", wait)
        with self._lock:
            if self._waiting >= self.QUEUE:
                return Refused("busy", 1)
            self._waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self.pool, self._login, user, password, addr)
        finally:
            with self._lock:
                self._waiting -= 1

    def _login(self, user: str, password: str, addr: str) -> tuple[str, str] | Refused:
        now = time.time()
        until = self.store.lockout(user)
        if until is not None and until > now:
            return Refused("locked", max(1, int(until - now + 0.999)))
        wait = self.address_wait(addr)  # others from the address failed while it queued
        if wait:
            return Refused("throttled", wait)
        got = self.store.login(user, password, addr)
        if got is not None:
            with self._lock:
                self._users.pop(user, None)
            return got
        with self._lock:
            failures = len(self._recent(self._note(self._users, user, now),
                                        self.USER_WINDOW_S, now))
            self._note(self._addrs, addr, now)
            if failures >= self.USER_MAX:
                self._users.pop(user, None)  # the lockout is the penalty; counted afresh after
        if failures >= self.USER_MAX:
            self.store.lock_out(user, now + self.LOCK_S, addr, failures)
        return Refused("wrong")

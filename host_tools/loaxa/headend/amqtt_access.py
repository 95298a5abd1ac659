"""The embedded amqtt broker with the commune's access rules (access.py):
amqtt's authentication and topic-check plugin APIs (amqtt 0.12,
`amqtt.plugins.base.BaseAuthPlugin.authenticate(session=)` and
`BaseTopicPlugin.topic_filtering(session=, topic=, action=)`), and a broker
that checks credentials before it touches any session.

Loaded only where the embedded broker runs: amqtt is a heavy import."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from .access import Access

log = logging.getLogger("loaxa.headend.broker")
LOOK_S = 0.25  # the inventory file is looked at no more often (every publish asks)


class InventoryAccess:
    """The Access of an inventory, read again when the inventory file changes
    (a node provisioned or re-provisioned while `serve` runs is let in, and its
    old password out, at its next connect)."""

    def __init__(self, inventory: str | os.PathLike, prefix: str, communes: list[str]):
        self.path = Path(inventory)
        self.prefix = prefix
        self.communes = communes
        self._stamp: tuple[int, int, bytes] | None = None
        self._access = Access(prefix)
        self._looked = 0.0
        self()

    def __call__(self, fresh: bool = False) -> Access:
        """fresh: look at the file now (a connect), not only every LOOK_S (a publish)."""
        from ..inventory import Inventory

        now = time.monotonic()
        if not fresh and now - self._looked < LOOK_S and self._stamp is not None:
            return self._access
        self._looked = now
        try:
            stamp = _stamp(self.path)
        except OSError:
            return self._access  # kept: a moment without the file locks nobody out
        if stamp != self._stamp:
            with Inventory(self.path) as inv:
                self._access = Access.from_inventory(inv, self.prefix, self.communes)
            # the stamp from before the read: a write during it is read next time
            self._stamp = stamp
        return self._access


def _stamp(path: Path) -> tuple[int, int, bytes]:
    """What changes with every commit to the inventory: its time and size, which a
    rewrite of the same pages within one clock tick leaves equal, and SQLite's file
    change counter (header bytes 24-27, bumped by every transaction in the
    inventory's rollback-journal mode)."""
    st = path.stat()
    with open(path, "rb") as f:
        f.seek(24)
        return st.st_mtime_ns, st.st_size, f.read(4)


class LoaxaAuth(BaseAuthPlugin):
    """A known user with its password, nobody else (no anonymous clients)."""

    @dataclass
    class Config:
        access: Any = None  # (fresh=False) -> Access

    async def authenticate(self, *, session: Session) -> bool:
        return self.config.access(True).check(session.username, session.password)


class LoaxaTopics(BaseTopicPlugin):
    """Each publish, subscribe and delivery against the user's ACL."""

    @dataclass
    class Config:
        access: Any = None

    async def topic_filtering(self, *, session: Session | None = None, topic: str | None = None,
                              action: Action | None = None) -> bool:
        ok = session is not None and topic is not None and action is not None and \
            self.config.access().allowed(session.username, str(action), topic)
        if not ok and action != Action.RECEIVE:
            log.warning("refused: %s %s %s", session.username if session else None, action,
                        topic)
        return ok


def plugins(access: Callable[[], Access]) -> dict:
    return {f"{__name__}.LoaxaAuth": {"access": access},
            f"{__name__}.LoaxaTopics": {"access": access}}


class LoaxaBroker(Broker):
    by_user = True  # False: amqtt's own way (anonymous baseline of the benches)

    async def _initialize_client_session(self, reader: Any, writer: Any, remote_address: str,
                                         remote_port: int) -> tuple[BrokerProtocolHandler,
                                                                    Session]:
        if not self.by_user:
            return await super()._initialize_client_session(reader, writer, remote_address,
                                                            remote_port)
        # amqtt 0.12.1 ends the session of a clean-session CONNECT's client id before
        # it checks the credentials, and takes it over after a refusal: anyone who
        # connected as `loaxa-n1` with no password left node n1 deaf (issue 18).
        # Here nothing is touched until the user is known, and the session is
        # named by the user: whatever client id a CONNECT says, it can only
        # reach its own user's session (as mosquitto's use_username_as_clientid).
        try:
            handler, s = await BrokerProtocolHandler.init_from_connect(
                reader, writer, self.plugins_manager)
        except (AMQTTError, MQTTError, NoDataError) as e:
            raise AMQTTError(e) from e
        will_ok = not s.will_flag or await self._topic_filtering(
            s, s.will_topic or "", Action.PUBLISH)
        if not await self._authenticate(s, None) or not will_ok:  # type: ignore[arg-type]
            log.warning("refused a connect from %s as %r (client id %r)", remote_address,
                        s.username, s.client_id)
            s.parent = 0
            handler.attach(s, reader, writer)
            await handler.mqtt_connack_authorize(False)  # CONNACK 5: not authorised
            await writer.close()
            raise AMQTTError(f"refused {s.username!r} from {remote_address}")
        s.client_id = s.username
        if s.clean_session:
            await self._delete_session(s.client_id)
            s.parent = 0
        elif s.client_id in self._sessions:
            old, _ = self._sessions[s.client_id]
            for k in ("will_flag", "will_message", "will_topic", "will_qos", "will_retain",
                      "keep_alive", "username", "password"):
                setattr(old, k, getattr(s, k))
            s = old
            s.parent = 1
        else:
            s.parent = 0
        delay = self.config.get("timeout-disconnect-delay", 0)
        if s.keep_alive > 0 and isinstance(delay, int):
            s.keep_alive += delay
        return handler, s

    # amqtt 0.12.1, on every CONNECT, sends the client the retained messages
    # matching every filter any client subscribed to, not only its own: a
    # reconnecting node got each node's retained status (and other zones'
    # rules) and refused them as bad_topic. Retained messages go only to a
    # session that holds the filter [MQTT-3.3.1-6].
    async def _publish_retained_messages_for_subscription(
            self, subscription: tuple[str, int], session: Any) -> None:
        if any(s is session for s, _ in self._subscriptions.get(subscription[0], ())):
            await super()._publish_retained_messages_for_subscription(subscription, session)

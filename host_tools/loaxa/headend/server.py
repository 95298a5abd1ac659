"""`loaxa headend serve`: the store, the MQTT broker (embedded amqtt unless
--broker names one), the file server nodes fetch broadcasts from, the
controller that signs commands and files what nodes report, and the API on
one port (docs/headend.md)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..control import Controller
from ..errors import LoaxaError
from ..i18n import t
from ..inventory import Inventory
from ..provision import read_ca
from .access import CLI, HEADEND, Access
from .service import Headend
from .store import Store

STORE = "headend.sqlite"


class Loop:
    """An asyncio loop in a thread, for the broker and the file server while
    uvicorn owns the main thread's loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="headend-io",
                                       daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 15) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class EmbeddedBroker:
    """amqtt enforcing the commune's access rules (access.py) from the inventory:
    no anonymous client, each node its own topics, the session its user's. One
    TCP listener, and a TLS one when given a certificate (nodes over 4G)."""

    def __init__(self, loop: Loop, host: str, port: int, access: Callable[[], Access] | None,
                 tls: tuple[str, str] | None = None, tls_port: int = 8883):
        """access None: anyone may do anything, as amqtt does by default; only
        for the benches' unauthenticated baseline."""
        from .amqtt_access import plugins

        self.io = loop
        shown = "127.0.0.1" if host == "0.0.0.0" else host
        self.url = f"mqtt://{shown}:{port}"
        self.tls_url = f"mqtts://{shown}:{tls_port}" if tls else None
        listeners: dict[str, Any] = {"default": {"type": "tcp", "bind": f"{host}:{port}"}}
        if tls:
            listeners["tls"] = {"type": "tcp", "bind": f"{host}:{tls_port}", "ssl": True,
                                "certfile": tls[0], "keyfile": tls[1]}
        self.cfg = {"listeners": listeners, "plugins": plugins(access) if access else {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}}
        self.by_user = access is not None
        self.broker: Any = None

    def start(self) -> EmbeddedBroker:
        from .amqtt_access import LoaxaBroker

        logging.getLogger("amqtt").setLevel(logging.WARNING)  # one line a packet otherwise

        async def up() -> Any:
            b = LoaxaBroker(self.cfg)
            b.by_user = self.by_user
            await b.start()
            return b
        try:
            self.broker = self.io.run(up())
        except Exception as e:
            raise LoaxaError(f"the embedded MQTT broker did not start: {e}",
                             "is the port taken? use --mqtt-port or --broker; with "
                             "--mqtt-tls-cert, are the certificate and key files readable "
                             "PEM?") from None
        return self

    def stop(self) -> None:
        if self.broker is not None:
            self.io.run(self.broker.shutdown())


class Ticker:
    """Every second, sends the scheduled broadcasts whose time has come, and
    the time to nodes without a trusted clock."""

    def __init__(self, he: Headend):
        self.he = he
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="headend-schedule", daemon=True)

    def start(self) -> Ticker:
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.done.wait(1.0):
            try:
                self.he.fire_due()
            except Exception:  # the store or broker failing now must not stop later ones
                logging.getLogger("loaxa.headend").exception("scheduled broadcasts")
            try:
                self.he.hint_clocks()
            except Exception:
                logging.getLogger("loaxa.headend").exception("time for nodes without it")

    def stop(self) -> None:
        self.done.set()
        self.thread.join(5)


def open_headend(data: str | Path) -> Headend:
    """The head-end `serve` left in data: the CLI's way in. Commands go out
    through the same broker with the same keys."""
    store = Store(Path(data) / STORE)
    cfg = store.setting("serve")
    if cfg is None:
        return Headend(store)
    return Headend(store, lambda: connect(cfg, None, store), cfg.get("media"),
                   cfg.get("files_url"))


def connect(cfg: dict, he: Headend | None, store: Store, client_id: str | None = None
            ) -> Controller:
    with Inventory(cfg["inventory"]) as inv:
        # serve and the CLI each have their own broker user: the broker names a
        # session by its user, so one must not take over the other's (access.py)
        user, password = inv.headend_login(
            cfg["commune"], (HEADEND if he else CLI).format(commune=cfg["commune"]))
        keys, zones = {}, {}
        for n in inv.nodes():
            if n["commune"] == cfg["commune"]:
                zones[n["node_id"]] = n.get("zones") or []
                try:
                    keys[n["node_id"]] = bytes.fromhex(inv.node_key(n["node_id"]))
                except LoaxaError:
                    pass  # a node not yet provisioned has no key and gets nothing
    # Only serve files what nodes report. A CLI sends under its own sender name
    # with its own counter in the same store (docs/envelope.md): two processes
    # sharing one counter could deliver 11 before 10, and 10 would be refused.
    ca = read_ca(cfg["broker_ca"]) if cfg.get("broker_ca") else None
    return Controller(cfg["broker"], cfg["commune"], keys, zones, prefix=cfg["prefix"],
                      sender="headend" if he else "headend-cli", client_id=client_id, ca=ca,
                      on_doc=he.ingest if he else None, keep=False,
                      persistent=he is not None, take=store.next_seq, user=user,
                      password=password)


def serve(data: str | Path, inventory: str | None, commune: str, host: str, port: int,
          broker: str | None, mqtt_port: int, media: str | None, files_port: int,
          public_host: str, prefix: str = "loaxa",
          tls: tuple[str, str] | None = None, broker_ca: str | None = None,
          tts: str | None = None, alerts: dict | None = None,
          mqtt_tls: tuple[str, str] | None = None, mqtt_tls_port: int = 8883) -> None:
    import uvicorn

    from .app import create_app

    store = Store(Path(data) / STORE)
    if not media:  # the bulletin library's folder (docs/headend.md)
        media = str(Path(data) / "media")
        Path(media).mkdir(parents=True, exist_ok=True)
    with Inventory(inventory) as inv:
        store.sync_nodes([n for n in inv.nodes() if n["commune"] == commune])
        inv_path = str(inv.path)
    io = Loop()
    if broker:
        emb = None
    else:
        from .amqtt_access import InventoryAccess
        emb = EmbeddedBroker(io, host, mqtt_port, InventoryAccess(inv_path, prefix, [commune]),
                             mqtt_tls, mqtt_tls_port).start()
    url = broker or (emb.url if emb else "")
    he = Headend(store, media=media)
    # the stream server: files for --media, live relays always
    fport = io.run(he.files.start(host, files_port))
    he.io = io
    he.live_url = f"http://{public_host}:{fport}{he.files.LIVE}"
    if media:
        he.files_url = f"http://{public_host}:{fport}{he.files.prefix}"
    files_url = he.files_url
    if broker_ca:
        read_ca(broker_ca)  # a file that is no certificate stops the start, not a connect
    cfg = {"broker": url, "commune": commune, "inventory": inv_path, "prefix": prefix,
           "media": media, "files_url": files_url, "broker_ca": broker_ca, "tts": tts,
           "alerts": alerts or {}}
    store.set_setting("serve", cfg)
    he.connect = lambda: connect(cfg, he, store, "loaxa-headend")
    _ = he.ctl  # connect now: status and events are filed from the start
    he.recover()
    ticker = Ticker(he).start()
    app = create_app(he)
    from .alerts import Watcher

    watcher = Watcher(app.state.alerts).start()
    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            ssl_certfile=tls[0] if tls else None,
                            ssl_keyfile=tls[1] if tls else None)
    scheme = "https" if tls else "http"
    shown = f"{url} {emb.tls_url}" if emb and emb.tls_url else url
    print(t("headend.serving", web=f"{scheme}://{public_host}:{port}/", broker=shown,
            files=files_url or "-"), flush=True)
    try:
        uvicorn.Server(config).run()
    finally:
        watcher.stop()
        ticker.stop()
        for relay in list(he.relays.values()):
            relay.stop()
        he.close()
        if emb:
            emb.stop()
        io.stop()
        store.close()

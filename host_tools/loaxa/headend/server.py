"""`loaxa headend serve`: the store, the MQTT broker (embedded amqtt unless
--broker names one), the file server nodes fetch broadcasts from, the
controller that signs commands and files what nodes report, the scheduler, the
alert watcher and the API on one port (docs/headend.md, "One loop, one store").

One event loop runs them all: uvicorn's. What runs on it is started and
stopped in the app's lifespan (Serving); the service's calls block (SQLite,
a command waiting for its PUBACK), so they run on worker threads, never on
the loop: the sync routes on Starlette's, the scheduler's and the watcher's
on the loop's default executor, what nodes report on one thread of its own
(in order, and the MQTT client waits for each)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from loaxa_node.config import TOPIC_PREFIX

from ..control import Controller, on_loop
from ..errors import LoaxaError
from ..i18n import t
from ..inventory import Inventory
from ..provision import read_ca
from .access import CLI, HEADEND, Access
from .service import Headend
from .store import Store

STORE = "headend.sqlite"


class OnLoop:
    """A running loop as the service's threads see it (he.io): run(coro) waits,
    from a worker thread, for coro on the loop (a live relay starts so)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def run(self, coro: Any, timeout: float = 15) -> Any:
        if on_loop(self.loop):
            coro.close()
            raise RuntimeError("a blocking call on the loop would wait for itself")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


class Loop(OnLoop):
    """An asyncio loop in a thread of its own: for tests and benches, which
    run a broker or a client beside a synchronous caller."""

    def __init__(self) -> None:
        super().__init__(asyncio.new_event_loop())
        self.thread = threading.Thread(target=self.loop.run_forever, name="headend-io",
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class EmbeddedBroker:
    """amqtt enforcing the commune's access rules (access.py) from the inventory:
    no anonymous client, each node its own topics, the session its user's. One
    TCP listener, and a TLS one when given a certificate (nodes over 4G)."""

    def __init__(self, loop: OnLoop, host: str, port: int, access: Callable[[], Access] | None,
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

    async def begin(self) -> EmbeddedBroker:
        """Start on the running loop (serve's lifespan)."""
        from .amqtt_access import LoaxaBroker

        logging.getLogger("amqtt").setLevel(logging.WARNING)  # one line a packet otherwise
        try:
            b = LoaxaBroker(self.cfg)
            b.by_user = self.by_user
            await b.start()
        except Exception as e:
            raise self._failed(e) from None
        self.broker = b
        return self

    @staticmethod
    def _failed(e: Exception) -> LoaxaError:
        return LoaxaError(f"the embedded MQTT broker did not start: {e}",
                          "is the port taken? use --mqtt-port or --broker; with "
                          "--mqtt-tls-cert, are the certificate and key files readable PEM?")

    async def end(self) -> None:
        if self.broker is not None:
            await self.broker.shutdown()
            self.broker = None

    def start(self) -> EmbeddedBroker:
        """Start from another thread than the loop's (tests, benches)."""
        try:
            self.io.run(self.begin())
        except LoaxaError:
            raise
        except Exception as e:
            raise self._failed(e) from None
        return self

    def stop(self) -> None:
        self.io.run(self.end())


async def every_second(what: str, done: asyncio.Event, *calls: Callable[[], object]) -> None:
    """A task of serve's loop: each second until done, each call on a worker
    thread (they block: the store, a command waiting for its PUBACK). A call that
    fails is logged; the next second tries again. A call under way when done is
    set is let finish: the controller it may use is closed only after."""
    log = logging.getLogger("loaxa.headend")
    while not done.is_set():
        try:
            await asyncio.wait_for(done.wait(), 1.0)
            return
        except TimeoutError:
            pass
        for call in calls:
            try:
                await asyncio.to_thread(call)
            except Exception:  # the store or broker failing now must not stop later ones
                log.exception(what)


def open_headend(data: str | Path) -> Headend:
    """The head-end `serve` left in data: the CLI's way in. Commands go out
    through the same broker with the same keys."""
    store = Store(Path(data) / STORE)
    cfg = store.setting("serve")
    if cfg is None:
        return Headend(store)
    return Headend(store, lambda: connect(cfg, None, store), cfg.get("media"),
                   cfg.get("files_url"))


def connect(cfg: dict, he: Headend | None, store: Store, client_id: str | None = None,
            loop: asyncio.AbstractEventLoop | None = None,
            on_doc: Callable[[str, str, bytes, float], Any] | None = None) -> Controller:
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
                      on_doc=on_doc or (he.ingest if he else None), keep=False,
                      persistent=he is not None, take=store.next_seq, user=user,
                      password=password, loop=loop)


class Serving:
    """What serve runs on its one loop, started and stopped in the app's
    lifespan: the embedded broker, the file server, the controller's MQTT
    client, live relays, the scheduler and the alert watcher (tasks)."""

    def __init__(self, he: Headend, cfg: dict, web: str, host: str, files_port: int,
                 public_host: str, mqtt_port: int, mqtt_tls: tuple[str, str] | None,
                 mqtt_tls_port: int):
        self.he, self.cfg, self.web = he, cfg, web
        self.host, self.files_port, self.public_host = host, files_port, public_host
        self.mqtt = (mqtt_port, mqtt_tls, mqtt_tls_port)
        self.emb: EmbeddedBroker | None = None
        self.tasks: list[asyncio.Task] = []
        self.done = asyncio.Event()
        # what nodes report, filed in order on one thread: SQLite's calls block
        self.filing = ThreadPoolExecutor(1, thread_name_prefix="headend-ingest")
        self.failed: BaseException | None = None  # what stopped the start, said after
        self.ready = ""  # the line serve prints once everything is up

    @asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        try:
            await self.start(app)
        except BaseException as e:
            self.failed = e
            await self.stop()
            raise
        print(self.ready, flush=True)
        try:
            yield
        finally:
            await self.stop()

    async def start(self, app: Any) -> None:
        he, cfg = self.he, self.cfg
        loop = asyncio.get_running_loop()
        io = OnLoop(loop)
        if not cfg["broker"]:
            from .amqtt_access import InventoryAccess

            port, tls, tls_port = self.mqtt
            self.emb = await EmbeddedBroker(
                io, self.host, port, InventoryAccess(cfg["inventory"], cfg["prefix"],
                                                     [cfg["commune"]]),
                tls, tls_port).begin()
            cfg["broker"] = self.emb.url
        # the stream server: files for --media, live relays always
        fport = await he.files.start(self.host, self.files_port)
        he.io = io
        he.live_url = f"http://{self.public_host}:{fport}{he.files.LIVE}"
        if cfg["media"]:
            he.files_url = f"http://{self.public_host}:{fport}{he.files.prefix}"
        cfg["files_url"] = he.files_url
        await asyncio.to_thread(he.store.set_setting, "serve", cfg)

        def filed(channel: str, node: str, payload: bytes, rx: float) -> Any:
            return loop.run_in_executor(self.filing, he.ingest, channel, node, payload, rx)
        he.connect = lambda: connect(cfg, he, he.store, "loaxa-headend", loop, filed)
        # connect now (status and events are filed from the start), then recover:
        # both wait on the loop, so from a worker thread
        await asyncio.to_thread(lambda: he.ctl)
        await asyncio.to_thread(he.recover)
        self.tasks = [
            asyncio.create_task(every_second("scheduled broadcasts", self.done, he.fire_due,
                                             he.hint_clocks), name="headend-schedule"),
            asyncio.create_task(every_second("alerts", self.done, app.state.alerts.check),
                                name="headend-alerts")]
        self.ready = t("headend.serving", web=self.web, broker=(
            f"{cfg['broker']} {self.emb.tls_url}" if self.emb and self.emb.tls_url
            else cfg["broker"]), files=he.files_url or "-")

    async def stop(self) -> None:
        he = self.he
        self.done.set()  # the calls under way finish (a relay starts within 10 s)
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=20)
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self.tasks = []
        for relay in list(he.relays.values()):
            relay.stop()
        he.connect = None  # a late call says "no broker" rather than connect again
        await asyncio.to_thread(he.close)
        await asyncio.to_thread(self.filing.shutdown)
        if he.io is not None:
            await he.files.close()
            he.io = None
        if self.emb:
            await self.emb.end()


def serve(data: str | Path, inventory: str | None, commune: str, host: str, port: int,
          broker: str | None, mqtt_port: int, media: str | None, files_port: int,
          public_host: str, prefix: str = TOPIC_PREFIX,
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
    if broker_ca:
        read_ca(broker_ca)  # a file that is no certificate stops the start, not a connect
    he = Headend(store, media=media)
    cfg = {"broker": broker or "", "commune": commune, "inventory": inv_path,
           "prefix": prefix, "media": media, "files_url": None, "broker_ca": broker_ca,
           "tts": tts, "alerts": alerts or {}}
    scheme = "https" if tls else "http"
    serving = Serving(he, cfg, f"{scheme}://{public_host}:{port}/", host, files_port,
                      public_host, mqtt_port, mqtt_tls, mqtt_tls_port)
    app = create_app(he, lifespan=serving.lifespan)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            ssl_certfile=tls[0] if tls else None,
                            ssl_keyfile=tls[1] if tls else None, lifespan="on")
    # a start refused for a reason serve can say (the MQTT port taken) is said as
    # the CLI says errors, in one sentence, without uvicorn's traceback of it
    logging.getLogger("uvicorn.error").addFilter(
        lambda record: not isinstance(serving.failed, LoaxaError))
    try:
        uvicorn.Server(config).run()
    except SystemExit:
        if not isinstance(serving.failed, LoaxaError):
            raise
    finally:
        store.close()
    if isinstance(serving.failed, LoaxaError):
        raise serving.failed

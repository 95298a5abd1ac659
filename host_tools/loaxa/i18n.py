"""What the tools say to people, in English or Vietnamese by $LANG.

English is in the code (MESSAGES, one entry per message, marked with N_ so
Babel extracts it); the translations are gettext catalogues,
locale/<lang>/LC_MESSAGES/loaxa.po, compiled to .mo by `make` (docs/i18n.md
says how translators work with them). A message without a translation, or a
missing catalogue, falls back to English.
"""

from __future__ import annotations

import gettext
import os
from pathlib import Path

DOMAIN = "loaxa"
LOCALEDIR = Path(__file__).parent / "locale"
LANGUAGES = ("en", "vi")


def N_(msg: str) -> str:
    """Marks a message for extraction; it is translated when shown (t)."""
    return msg


MESSAGES: dict[str, str] = {
    "sim.started": N_(
        "Simulated node running (board {board}, heap {heap} KB).\n"
        "  console: {url}\n"
        "  flash:   {state}\n"
        "  audio:   {audio}\n"
        "Open the console with any serial tool, e.g.\n"
        "  python -m serial.tools.miniterm {url}\n"
        "Ctrl-C here powers the node off."),
    "sim.stopped": N_("Node powered off."),
    "demo.title": N_("loaxa demo: a commune's head-end and three loudspeaker clusters on this "
                     "machine, in about a minute."),
    "demo.missing": N_("{program} is not installed; the demo needs it."),
    "demo.install": N_("install it: sudo apt-get install {package} (or `make sysdeps` as root)"),
    "demo.starting": N_("Starting the head-end (embedded MQTT broker, SQLite in {data}) and "
                        "three simulated loudspeaker clusters (the firmware on the real "
                        "MicroPython VM)..."),
    "demo.headend": N_("Head-end up: web page {web}, broker {broker}. Each loudspeaker cluster "
                       "has the "
                       "commune's key, its own key, its area and a set clock."),
    "demo.online": N_("Online: {nodes}."),
    "demo.rules": N_("Rules {version} pushed, signed with the commune key: {open} may "
                     "broadcast {w1} (open now), {shut} {w2} (later). File: {path}"),
    "demo.news": N_("Normal announcement “{title}” for {zone}: playing on {nodes}."),
    "demo.refused": N_("Normal announcement for {zone}: refused by {node}: {why}."),
    "demo.emergency": N_("Emergency “{title}”: the siren plays on {nodes}; on "
                         "{cut} it cut into the announcement."),
    "demo.resumed": N_("Emergency ended: “{title}” resumed on {nodes}."),
    "demo.ended": N_("“{title}” played to its end; the play logs reached the "
                     "head-end."),
    "demo.news_title": N_("Vaccination day"),
    "demo.siren_title": N_("Storm warning"),
    "demo.table": N_("The loudspeaker clusters, as the head-end sees them"),
    # TRANSLATORS: the node table's column headers, separated by |
    "demo.cols": N_("loudspeaker cluster|area|state|rules|heard, in order|refused|"
                    "WAV (one per cluster, one clock)"),
    "demo.state.online": N_("online"),
    "demo.state.offline": N_("offline"),
    "demo.nothing": N_("nothing"),
    "demo.files": N_("Files:\n"
                     "  report (CSV: minutes per area and day, each loudspeaker cluster's "
                     "uptime): {csv}\n"
                     "  the rules: {rules}\n"
                     "  head-end log: {log}\n"
                     "  head-end store (SQLite): {store}"),
    "demo.story": N_(
        "What happened:\n"
        "  - “{news}” was for {open} only: {nodes} played it, the loudspeaker cluster of {shut} "
        "stayed silent.\n"
        "  - The loudspeaker cluster of {shut} refused the announcement meant for it: {why}. "
        "Every loudspeaker cluster "
        "checks the commune's signed rules itself; {shut} may broadcast {w2}.\n"
        "  - An emergency needs no window: the siren cut in on every loudspeaker cluster at "
        "once, at the "
        "emergency volume; when it ended, {nodes} played “{news}” again from the start.\n"
        "  - The report counts {m1} min for {open} and {m2} min for {shut}: what the "
        "loudspeaker clusters "
        "played, from their play logs."),
    "demo.web": N_("Open the head-end's web page: {web}  (user {user}, password {password})"),
    "demo.done": N_("Done."),
    "demo.enter": N_("Press Enter (or Ctrl-C) to stop the head-end and the loudspeaker clusters. "),
    "demo.not_tty": N_("Not a terminal: stopping the head-end and the loudspeaker clusters now."),
    "demo.stopped": N_("Stopped; the files stay where they are."),
    "flash.done": N_("{port}: flashed MicroPython {version} ({chip}, MAC {mac})."),
    "flash.factory": N_(
        "{port}: wrote MicroPython {version}, the app and the provisioning of {node} "
        "(MAC {mac}); the node boots ready."),
    "flash.same": N_(
        "{port}: MicroPython {version} already on the board ({chip}, MAC {mac}); "
        "nothing written."),
    "deploy.done": N_(
        "{port}: deployed {app} ({sent} of {files} files sent, {kb:.1f} KB on the "
        "wire, {s:.1f} s); the application restarted."),
    "deploy.same": N_("{port}: {app} is already installed and verified; nothing sent."),
    "provision.done": N_(
        "{port}: node {node} provisioned, keys stored in the inventory, tone played."),
    "batch.summary": N_("{ok} of {n} boards ready."),
    "rules.ok": N_(
        "{file}: ok — {windows} windows, {items} schedule items, {exceptions} "
        "exceptions, {size} bytes compiled"),
    "rules.wrote": N_("wrote {file} ({size} bytes)"),
    "rules.plays": N_("  PLAYS at {volume} %"),
    "rules.refused": N_("  REFUSED"),
    "rules.why": N_("  why:   {reason}"),
    "rules.until": N_("  until: {until}"),
    "rules.no_change": N_("no change within a week"),
    "rules.item": N_("  schedule: {item} ({src}) runs until {end}"),
    "rules.week": N_(
        "Week of Monday {monday} (UTC{tz}); times when normal content may play, at "
        "its default volume:"),
    "rules.zone": N_("== area {zone} =="),
    "rules.all_nodes": N_("== all loudspeaker clusters =="),
    "rules.silent": N_("silent"),
    "rules.silent_exc": N_("silent (exception {name})"),
    "rules.refused_at": N_("refused: {reason}"),
    # TRANSLATORS: the days of the week, Monday first, separated by |
    "rules.days": N_("Mon|Tue|Wed|Thu|Fri|Sat|Sun"),
    "rules.open": N_("{volume} % (max {cap} %)"),
    "rules.emergency": N_("Emergency plays at any hour at {volume} %."),
    "priority.emergency": N_("emergency"),
    "priority.priority": N_("priority"),
    "priority.normal": N_("normal"),
    "priority.test": N_("test"),
    "kind.live": N_("live"),
    "kind.file": N_("file"),
    "kind.relay": N_("relay"),
    "kind.tone": N_("tone"),
    "reason.emergency": N_("emergency: plays at any hour at {volume} %"),
    "reason.untrusted_live": N_(
        "clock not trusted: live plays at {volume} %, the lowest window volume"),
    "reason.untrusted_waits": N_(
        "clock not trusted (no time sync yet): {kind} content waits for one"),
    "reason.quiet_hours": N_("quiet hours {start}-{end}: only emergency plays"),
    "reason.exception_mutes": N_("exception {exception}: silence on these dates"),
    "reason.outside_windows": N_("outside every broadcast window"),
    "reason.outside_zones": N_("outside every broadcast window of area {zones}"),
    "reason.window_denies_priority": N_("window {window} does not allow {priority}"),
    "reason.sessions_per_day": N_("limit of {limit} sessions a day reached"),
    "reason.minutes_per_day": N_("limit of {limit} minutes a day reached"),
    "reason.session_minutes": N_("limit of {limit} minutes a session reached"),
    "reason.window_allows": N_(
        "window {window} ({start}-{end}) allows {priority} at {volume} % (cap {cap} %)"),
    "reason.of_zone": N_(" (the limit of area {zone})"),
    "reason.item_ended": N_("schedule item ended"),
    "error": N_("error: {msg}"),
    "hint": N_("  hint: {hint}"),
    "missing.module": N_("this command needs the Python module '{name}', which is not installed"),
    "missing.module_hint": N_(
        "install the part of loaxa it belongs to: pip install 'loaxa[headend]' for the "
        "head-end, 'loaxa[rig]' for the simulated node and the test rig (in a checkout, "
        "`make demo` installs everything)"),
    "ports.none": N_("no ESP32 USB-serial port found"),
    "ports.none_hint": N_(
        "plug the node in with a data cable (not a charging-only one), or give --port"),
    "ports.many": N_("{n} ESP32 boards are plugged in"),
    "ports.many_hint": N_("choose one with --port: {ports}"),
    "diag.need_pin": N_("this needs the node's service PIN"),
    "diag.need_pin_hint": N_("give --pin or set $LOAXA_SERVICE_PIN"),
    "diag.no_crash": N_("the crash log is empty"),
    "diag.follow_lost": N_("the cable to {port} was pulled; stopped following"),
    "diag.follow_lost_hint": N_("plug it back in and run the command again; loaxa diag "
                                "monitor waits for the cable by itself"),
    "diag.no_window": N_("none open"),
    "diag.rules_head": N_("Rules {version} at {now} for zones {zones}:"),
    "diag.rules_builtin": N_("built in (not the commune's)"),
    "diag.rules_window": N_("  window now:  {window}"),
    "diag.rules_next": N_("  next change: {at}"),
    "diag.tone": N_("Tone {freq} Hz for {seconds} s at {volume} %; level {meter}"),
    "diag.volume": N_("volume {volume} %"),
    "diag.volume_playing": N_("; what plays now: {volume} %"),
    "diag.volume_range": N_("the volume is from 0 to 100"),
    "diag.clock": N_("{local}  {trust}; {offset} s from this laptop's clock"),
    "time.s": N_("{n} s"),
    "time.min": N_("{n} min"),
    "time.h": N_("{n} h"),
    "verdict.ok": N_("ok"),
    "verdict.warning": N_("warning"),
    "verdict.fault": N_("FAULT"),
    "check.console": N_("console"),
    "check.power": N_("power, resets"),
    "check.clock": N_("clock"),
    "check.link": N_("network"),
    "check.broker": N_("broker (MQTT)"),
    "check.rules": N_("rules"),
    "check.amp": N_("amplifier, speaker"),
    "check.heap": N_("memory (heap)"),
    "check.errors": N_("recent errors"),
    "check.version": N_("versions"),
    "doctor.head": N_("loaxa diag doctor on {port}"),
    "doctor.next": N_("→ {next}"),
    "doctor.verdict": N_("Verdict: {verdict} (exit code {code})."),
    "doctor.console_ok": N_("node {node} (board {board}) answers on {port}"),
    "doctor.console_down": N_("no answer on {port}: {error}"),
    "doctor.console_next": N_(
        "check the USB cable (a data cable) and that the node has power; loaxa ports "
        "lists the boards; if it prints only >>>, press Ctrl-D in a serial terminal to "
        "restart the application"),
    "doctor.power_ok": N_("last reset: {cause}, boot #{boots}, running for {uptime}"),
    "doctor.safe_mode": N_(
        "SAFE MODE after {fails} failed boots in a row: no audio, no rules; last "
        "crash: {last}"),
    "doctor.safe_mode_next": N_(
        "read the crash log (loaxa diag logs --crash), reinstall the application "
        "(loaxa deploy), then restart the node"),
    "doctor.watchdog": N_("last reset by the watchdog: the node hung"),
    "doctor.watchdog_next": N_(
        "watch it with loaxa diag monitor; if it happens again, read loaxa diag logs "
        "--crash and reinstall the application"),
    "doctor.brownout": N_("last reset by a brown-out: the supply voltage dropped"),
    "doctor.brownout_next": N_(
        "check the power supply, its cable and connectors; a weak supply sags when the "
        "amplifier plays loud"),
    "doctor.failed_boots": N_(
        "{fails} failed boot(s) in a row before this one; last crash: {last}"),
    "doctor.failed_boots_next": N_(
        "read the crash log (loaxa diag logs --crash); one more crash on boot puts the "
        "node in safe mode"),
    "doctor.clock_ok": N_("trusted: {local}, set by {source} {ago} ago"),
    "doctor.clock_never": N_(
        "NOT trusted: never synced since power-up (shows {local}); scheduled and "
        "relayed content will not play"),
    "doctor.clock_stale": N_("NOT trusted: the last sync was {ago} ago; scheduled content waits"),
    "doctor.clock_next": N_(
        "check the network and the NTP server (config ntp.server), or set the clock "
        "from this laptop: loaxa diag clock --set"),
    "doctor.signal": N_(", signal {dbm} dBm (CSQ {csq})"),
    "doctor.rssi": N_(", Wi-Fi signal {dbm} dBm"),
    "doctor.link_ok": N_("{type} up, address {addr}, for {up}, {reconnects} reconnects"),
    "doctor.weak_next": N_(
        "the signal is weak: check the antenna and its cable, try another place on the "
        "pole or another network operator's SIM"),
    "doctor.no_reason": N_("no reason given"),
    "doctor.link_down": N_("no network ({type}): {error}; {reconnects} reconnects so far"),
    "doctor.link_next": N_(
        "check the network cable or antenna and SIM (loaxa diag status shows the "
        "signal); the node keeps trying by itself, loaxa diag monitor shows when it is "
        "back"),
    "doctor.broker_none": N_("not configured"),
    "doctor.broker_missing": N_(
        "the inventory says this node uses {url}, but no broker is configured"),
    "doctor.broker_missing_next": N_("provision the node again (loaxa provision ... --broker URL)"),
    "doctor.broker_unreported": N_(
        "{url} configured, but this firmware reports no connection state"),
    "doctor.broker_unreported_next": N_("update the application (loaxa deploy)"),
    "doctor.broker_ok": N_("connected to {url} for {up}, {queued} events queued"),
    "doctor.dropped": N_("; {n} events dropped"),
    "doctor.dropped_next": N_(
        "the connection was down long enough to lose events: check the link's "
        "stability with loaxa diag monitor"),
    "doctor.broker_down": N_("not connected to {url}: {error}; {reconnects} reconnects"),
    "doctor.broker_next": N_(
        "fix the network first; then check the broker address (config broker.url) and "
        "that the head-end is running"),
    "doctor.rules_off": N_("off (safe mode)"),
    "doctor.rules_none": N_("no commune rules: only emergency broadcasts play"),
    "doctor.rules_none_next": N_(
        "the head-end sends the rules when the node connects; or sign them and send "
        "them over the cable (docs/rules.md)"),
    "doctor.rules_ok": N_("version {version}; "),
    "doctor.window_open": N_("window {window} open"),
    "doctor.window_closed": N_("no window open now"),
    "doctor.next_change": N_(", next change at {at}"),
    "doctor.tone_what": N_("test tone 1 kHz"),
    "doctor.tone_skipped": N_("skipped (--no-tone)"),
    "doctor.amp_fault": N_("the amplifier reports a fault ({kind})"),
    "doctor.amp_fault_next": N_(
        "switch the node off, check the speaker line for a short or a break and the "
        "amplifier's supply; then loaxa diag tone"),
    "doctor.amp_safe": N_("audio is off in safe mode"),
    "doctor.amp_untested": N_("not tested: {why}"),
    "doctor.amp_untested_next": N_("run loaxa diag doctor --pin PIN to play the test tone"),
    "doctor.amp_silent": N_("the test tone produced no signal"),
    "doctor.amp_silent_next": N_(
        "reinstall the application (loaxa deploy); if it stays silent the audio output "
        "of the board is faulty"),
    "doctor.amp_ok": N_("{what} played, peak {db} dBFS"),
    "doctor.amp_sensed": N_("; the amplifier reports no fault"),
    "doctor.amp_listen": N_("; this board cannot sense the speaker: listen for the tone"),
    "doctor.heap_oom": N_("the node ran out of memory (MemoryError); now "),
    "doctor.heap": N_("{free} KB free of {total} KB ({pct} %)"),
    "doctor.heap_next": N_(
        "restart the node (loaxa console --pin PIN reboot); if it stays this low, "
        "report it with loaxa diag status --json: the application needs fixing"),
    "doctor.errors_none": N_("none since the last start"),
    "doctor.errors": N_("{n} since the last start; last: {last}"),
    "doctor.errors_next": N_("read them with loaxa diag logs --level error"),
    "doctor.version": N_("firmware {fw}, app {app}, MicroPython {mpy}"),
    "doctor.app_image": N_("from the image"),
    "doctor.not_in_inventory": N_("; not in this laptop's inventory (nothing to compare)"),
    "doctor.as_inventory": N_("; as the inventory expects"),
    "doctor.app_differs": N_("; the inventory expects app {want}"),
    "doctor.app_next": N_("install the expected application: loaxa deploy"),
    "doctor.image_differs": N_("; the inventory expects MicroPython {want}"),
    "doctor.image_next": N_("flash the board's pinned image: loaxa flash, then loaxa deploy"),
    "status.node": N_("node"),
    "status.unnamed": N_("not provisioned yet"),
    "status.firmware": N_("firmware"),
    "status.uptime": N_("running"),
    "status.uptime_v": N_("{s} s, reset: {cause}, boot #{boots}"),
    "status.safe_mode": N_("SAFE MODE"),
    "status.clock": N_("clock"),
    "status.synced": N_("(trusted, from {source})"),
    "status.unsynced": N_("NOT synced: no scheduled content"),
    "status.none": N_("none"),
    "status.heap_use": N_("{alloc} B used, {free} B free"),
    "status.network": N_("network"),
    "status.net_up": N_("{type} up, {addr}"),
    "status.net_down": N_("{type} DOWN: {error}"),
    "status.broker": N_("broker"),
    "status.broker_up": N_("connected to {url}"),
    "status.broker_down": N_("NOT connected to {url} {error}"),
    "status.rules_l": N_("rules"),
    "status.rules": N_("{version}, window now: {window}"),
    "status.volume": N_("volume"),
    "status.playing_l": N_("playing"),
    "status.playing": N_("{source} ({priority}, {codec}) at {volume} %"),
    "status.level": N_("level"),
    "status.amp": N_("amplifier"),
    "status.amp_on": N_("on"),
    "status.amp_off": N_("off"),
    "status.amp_fault": N_("FAULT: {kind}"),
    "status.amp_fine": N_("no fault sensed"),
    "status.heap": N_("memory"),
    "status.temperature": N_("temperature"),
    "status.errors": N_("errors"),
    "monitor.connecting": N_("connecting…"),
    "monitor.connected": N_("connected to {port}"),
    "monitor.silent": N_("the node does not answer (restarting?)"),
    "monitor.unplugged": N_("no cable on {port}: waiting for it"),
    "monitor.restarted": N_("the node restarted (reset: {cause}, boot #{boots})"),
    "monitor.stale": N_("(last known)"),
    "monitor.status": N_("status"),
    "monitor.log": N_("log"),
    "monitor.quit": N_("Ctrl-C quits"),
    "cause.power_on": N_("power on"),
    "cause.hard": N_("reset button or power glitch"),
    "cause.soft": N_("software restart"),
    "cause.watchdog": N_("watchdog (the node hung)"),
    "cause.brownout": N_("brown-out (supply voltage dropped)"),
    "cause.deepsleep": N_("wake from deep sleep"),
    "cause.console": N_("restart from the console"),
    "cause.factory_reset": N_("factory reset"),
    "stream.ready": N_("Streaming {source} as {codec} {rate} Hz, {ptime} ms packets."),
    "stream.udp": N_("  RTP/UDP to {dest}"),
    "stream.http": N_("  HTTP (RFC 4571) for nodes on port {port}; session: {session}"),
    "stream.sdp": N_("  SDP written to {path}"),
    "headend.serving": N_("Head-end running. Web page and API: {web} ; MQTT broker: {broker} ; "
                          "files for nodes: {files}"),
    "headend.user": N_("User {name} saved with role {role}."),
    "headend.broker_files": N_("Wrote {passwd} and {acl}: {nodes} nodes and {users} head-end "
                               "users. Put these lines in mosquitto.conf, then reload it:"),
    # TRANSLATORS: column headers of the node table, separated by |
    "headend.nodes_cols": N_("loudspeaker cluster|areas|state|last seen|playing|volume|firmware"),
    "headend.ago": N_("{s} s ago"),
    # TRANSLATORS: column headers of the scheduled broadcasts table, separated by |
    "headend.scheduled_cols": N_("id|time|bulletin|areas|state|by"),
    "web.title": N_("Commune loudspeakers"),
    "web.library": N_("Bulletin library"),
    "web.media_title": N_("Title"),
    "web.media_file": N_("Audio file (from a phone: m4a, mp3, ogg, wav, amr)"),
    "web.media_upload": N_("Upload"),
    "web.media_sending": N_("Uploading and checking..."),
    # TRANSLATORS: the bulletin library's column headers, separated by |
    "web.media_cols": N_("Title|Length|By|Date|Listen|"),
    "web.media_broadcast": N_("Broadcast..."),
    "web.media_delete": N_("Delete"),
    "web.media_confirm": N_("Delete the bulletin “@”?"),
    "web.rec_start": N_("Record with the microphone"),
    "web.rec_stop": N_("Stop and save"),
    "web.tts": N_("Read a text aloud"),
    "web.alerts": N_("Alerts"),
    "web.nav.overview": N_("Overview"),
    "web.nav.clusters": N_("Loudspeaker clusters"),
    "web.nav.bulletins": N_("Bulletins"),
    "web.nav.schedule": N_("Schedule"),
    "web.nav.broadcast": N_("Broadcast, emergency"),
    "web.nav.reports": N_("Reports"),
    "web.nav.users": N_("Users"),
    # TRANSLATORS: the users table's columns, separated by |
    "web.u.cols": N_("User|Role|Added by, when|"),
    "web.u.set": N_("Add a user, or change a password or role"),
    "web.u.role": N_("Role"),
    "web.u.viewer": N_("viewer (sees only)"),
    "web.u.operator": N_("operator (broadcasts)"),
    "web.u.admin": N_("admin (schedule, users)"),
    "web.u.save": N_("Save"),
    "web.u.sure": N_("Remove the user @?"),
    "web.glance": N_("{online} of {total} loudspeaker clusters online."),
    "web.not_online": N_("Not online: {nodes}"),
    "web.now": N_("The loudspeaker clusters now"),
    "web.next": N_("Next scheduled broadcasts"),
    "web.s.forms": N_("Windows and schedule items"),
    "web.s.from": N_("Opens at"),
    "web.s.to": N_("Closes at"),
    "web.rep.show": N_("Show"),
    "web.cl.title": N_("Loudspeaker cluster {node}"),
    "web.cl.seen": N_("last heard"),
    "web.cl.timeline": N_("Online and offline, the last {hours} hours"),
    "web.cl.control": N_("Control"),
    "web.cl.set_volume": N_("Set the volume"),
    "web.cl.tone": N_("Test tone"),
    "web.cl.reboot": N_("Restart"),
    "web.cl.sure": N_("Restart this loudspeaker cluster?"),
    "web.cl.plays": N_("Play log"),
    # TRANSLATORS: a cluster's play log columns, separated by |
    "web.cl.play_cols": N_("Time|Title|Seconds|Priority|Outcome"),
    "web.cl.events": N_("Recent events"),
    # TRANSLATORS: a cluster's event columns, separated by |
    "web.cl.event_cols": N_("Time|Event|Detail"),
    "web.sched_title": N_("Broadcast schedule"),
    "web.s.version": N_("Version"),
    "web.s.quiet": N_("Quiet hours"),
    "web.s.limits": N_("Limits (normal content)"),
    "web.s.session_minutes": N_("Minutes per broadcast"),
    "web.s.sessions_per_day": N_("Broadcasts per day"),
    "web.s.minutes_per_day": N_("Minutes per day"),
    "web.s.windows": N_("Broadcast windows"),
    "web.s.items": N_("Scheduled items"),
    "web.s.add_window": N_("Add a window"),
    "web.s.add_item": N_("Add an item"),
    "web.s.name": N_("Name"),
    "web.s.days": N_("Days"),
    "web.s.volume": N_("Volume"),
    "web.s.max_volume": N_("Max volume"),
    "web.s.priorities": N_("May play (empty: all)"),
    "web.s.remove": N_("Remove"),
    "web.s.source": N_("Bulletin"),
    "web.s.start": N_("Start"),
    "web.s.minutes": N_("Minutes"),
    "web.s.pushed": N_("Pushed to every loudspeaker cluster (version {version})."),
    "web.s.d.daily": N_("every day"),
    "web.s.d.mon_fri": N_("Monday to Friday"),
    "web.s.d.mon_sat": N_("Monday to Saturday"),
    "web.s.d.sat_sun": N_("weekend"),
    "web.s.d.sun": N_("Sunday"),
    "web.ack": N_("Seen, I am on it"),
    # TRANSLATORS: the alert list's column headers, separated by |
    "web.alert_cols": N_("Time|Alert|Ended|Acknowledged by"),
    "alert.offline": N_("Loudspeaker cluster {node} is offline"),
    "alert.amp_fault": N_("Amplifier or speaker fault on loudspeaker cluster {node}"),
    "alert.safe_mode": N_("Loudspeaker cluster {node} started in safe mode"),
    "alert.crash_loop": N_("Loudspeaker cluster {node} keeps restarting (crash loop)"),
    "alert.rules_refused": N_("Loudspeaker cluster {node} refused the commune's schedule"),
    "alert.ack_hint": N_("Acknowledge it on the head-end's page."),
    "web.tts_text": N_("Text of the bulletin"),
    "web.tts_voice": N_("Voice"),
    "web.tts_rate": N_("Speed"),
    "web.tts_dry": N_("Show how it will be read"),
    "web.tts_make": N_("Make the bulletin"),
    "web.login": N_("Log in"),
    "web.logout": N_("Log out"),
    "web.user": N_("User name"),
    "web.password": N_("Password"),
    "web.bad_login": N_("Wrong user name or password."),
    "web.login_wait": N_("Too many failed logins: try again in {s} s."),
    "web.signed_in": N_("{user} ({role})"),
    # TRANSLATORS: column headers of the web page's node table, separated by |
    "web.cols": N_("Loudspeaker cluster|Areas|State|Last seen|Playing|Volume|Signal|Firmware"),
    "web.state.online": N_("online"),
    "web.state.offline": N_("offline"),
    "web.state.unknown": N_("not heard from"),
    "web.malformed": N_("{n} malformed messages"),
    "headend.user_removed": N_("User {name} removed; their sessions have ended."),
    "headend.user_unlocked": N_("User {name} may log in again."),
    "web.strangers": N_("Dropped, from loudspeaker clusters the inventory does not know "
                        "(cluster × messages): "
                        "{nodes}"),
    "web.live": N_("Updates by itself."),
    "web.broadcast": N_("Broadcast a bulletin or a live source"),
    "web.file": N_("Bulletin"),
    "web.source": N_("or live: a station's URL, or a microphone (alsa:default)"),
    "web.relays": N_("Live now"),
    # TRANSLATORS: column headers of the live relays, separated by |
    "web.relay_cols": N_("Source|Clusters listening|Seconds|"),
    "web.relay_none": N_("Nothing is relayed live."),
    "web.stop": N_("Stop"),
    "web.zones": N_("Areas (empty: all)"),
    "web.priority": N_("Priority"),
    "web.send": N_("Broadcast"),
    "web.emergency": N_("Emergency"),
    "web.emergency_start": N_("Start the emergency warning"),
    "web.emergency_stop": N_("End the emergency"),
    "web.done": N_("Sent."),
    "web.at": N_("Time (empty: now)"),
    "web.scheduled_ok": N_("Scheduled for {due}."),
    "web.scheduled": N_("Scheduled broadcasts"),
    # TRANSLATORS: column headers, separated by |
    "web.sched_cols": N_("Time|Bulletin|Areas|State|By"),
    "web.cancel": N_("Cancel"),
    "web.all_zones": N_("all"),
    "web.sched.pending": N_("waiting"),
    "web.sched.firing": N_("sending"),
    "web.sched.fired": N_("sent"),
    "web.sched.cancelled": N_("cancelled"),
    "web.sched.failed": N_("failed"),
    "web.sched.missed": N_("missed: the head-end was off"),
    "web.sched.interrupted": N_("interrupted"),
    "web.map": N_("Map"),
    "web.no_location": N_("Without a location (config location = \"lat,lon\"): {nodes}"),
    "web.rules": N_("Commune rules"),
    "web.rules_check": N_("Check"),
    "web.rules_push": N_("Push to every loudspeaker cluster, signed"),
    "web.rules_ok": N_("No errors (version {version})."),
    "web.rules_line": N_("Line {line}"),
    "web.week": N_("This week: when normal content may play, and how loud"),
    "web.all_nodes": N_("All loudspeaker clusters"),
    "web.report": N_("Report for the province"),
    "web.from": N_("From"),
    "web.to": N_("To"),
    "web.csv": N_("Download the report (CSV)"),
    "web.print": N_("Printable report"),
    "web.rep.title": N_("Broadcast report, {start} to {end}"),
    "web.rep.zones": N_("Broadcast time per area and day"),
    # TRANSLATORS: column headers, separated by |
    "web.rep.zone_cols": N_("Area|Day|Minutes|Seconds"),
    "web.rep.nodes": N_("Loudspeaker cluster uptime"),
    # TRANSLATORS: column headers, separated by |
    "web.rep.node_cols": N_("Loudspeaker cluster|Areas|Uptime|Online (s)|Observed (s)|"
                            "Offline periods"),
    "web.rep.offline": N_("Offline periods"),
    # TRANSLATORS: column headers, separated by |
    "web.rep.offline_cols": N_("Loudspeaker cluster|From|To|Seconds|Cause"),
    "web.rep.cause.will": N_("connection lost"),
    "web.rep.cause.silent": N_("no heartbeat"),
    "web.rep.plays": N_("Each broadcast"),
    # TRANSLATORS: column headers, separated by |
    "web.rep.play_cols": N_("Start|Loudspeaker cluster|Areas|Seconds|Title|Priority|Outcome"),
    "web.rep.none": N_("None."),
    "web.rep.made": N_("Made at {at} by {user}."),
    "web.rep.print": N_("Print"),
    "web.rep.back": N_("Back"),
    "files.ready": N_("Serving the audio files of {dir} to nodes on port {port} "
                      "(GET /file/TOKEN/NAME). The rules' [files]: {files}"),
    "stream.progress": N_(
        "\r  {seconds:7.1f} s sent, {clients} HTTP client(s), worst lag {late:.0f} ms"),
    "stream.done": N_(
        "\n"
        "Done: {seconds:.1f} s of audio in {packets} packets."),
}


def lang() -> str:
    """The reader's language: the first of $LANGUAGE, $LC_ALL, $LC_MESSAGES, $LANG set."""
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        v = os.environ.get(var, "")
        if v:
            return "vi" if v.lower().startswith("vi") else "en"
    return "en"


_catalogues: dict[str, gettext.NullTranslations] = {}


def catalogue(code: str | None = None) -> gettext.NullTranslations:
    code = code or lang()
    if code not in _catalogues:
        _catalogues[code] = gettext.translation(DOMAIN, LOCALEDIR, [code], fallback=True)
    return _catalogues[code]


def t(key: str, /, **kw: object) -> str:
    return t_in(lang(), key, **kw)


def t_in(code: str, key: str, /, **kw: object) -> str:
    """t() in a given language: the web page speaks its reader's, not $LANG."""
    return catalogue(code).gettext(MESSAGES[key]).format(**kw)

"""User-facing messages in Vietnamese and English, chosen by $LANG (vi* -> Vietnamese)."""

from __future__ import annotations

import os

MESSAGES: dict[str, dict[str, str]] = {
    "sim.started": {
        "en": "Simulated node running (board {board}, heap {heap} KB).\n"
        "  console: {url}\n  flash:   {state}\n  audio:   {audio}\n"
        "Open the console with any serial tool, e.g.\n"
        "  python -m serial.tools.miniterm {url}\n"
        "Ctrl-C here powers the node off.",
        "vi": "Nút mô phỏng đang chạy (bo mạch {board}, heap {heap} KB).\n"
        "  cổng console: {url}\n  bộ nhớ flash: {state}\n  âm thanh:     {audio}\n"
        "Mở console bằng công cụ serial bất kỳ, ví dụ\n"
        "  python -m serial.tools.miniterm {url}\n"
        "Nhấn Ctrl-C ở đây để tắt nút.",
    },
    "sim.stopped": {"en": "Node powered off.", "vi": "Đã tắt nút."},
    "demo.boot": {
        "en": "Booting a simulated speaker node (real MicroPython VM)...",
        "vi": "Đang khởi động một nút loa mô phỏng (máy ảo MicroPython thật)...",
    },
    "demo.console": {"en": "Console on {url}", "vi": "Cổng console: {url}"},
    "demo.health": {"en": "Node health (console `status`):",
                    "vi": "Tình trạng nút (lệnh console `status`):"},
    "demo.rows": {
        "en": "firmware|uptime|clock|volume|playing|heap|errors",
        "vi": "phần mềm|thời gian chạy|đồng hồ|âm lượng|đang phát|bộ nhớ heap|lỗi",
    },
    "demo.uptime": {"en": "{s} s, reset cause {cause}", "vi": "{s} giây, lý do khởi động {cause}"},
    "demo.synced": {"en": "synced", "vi": "đã đồng bộ"},
    "demo.unsynced": {"en": "NOT synced: no scheduled content",
                      "vi": "CHƯA đồng bộ: không phát nội dung theo lịch"},
    "demo.nothing": {"en": "nothing", "vi": "không có"},
    "demo.none": {"en": "none", "vi": "không có"},
    "demo.heap": {"en": "{alloc} B used, {free} B free", "vi": "đã dùng {alloc} B, còn {free} B"},
    "demo.tone": {"en": "Speaker test: 1 kHz tone for 1 s at 80 % ...",
                  "vi": "Thử loa: âm 1 kHz trong 1 giây ở mức 80 % ..."},
    "demo.captured": {"en": "  captured: {path}", "vi": "  đã ghi: {path}"},
    "demo.log": {"en": "Full console log: {path}", "vi": "Nhật ký console đầy đủ: {path}"},
    "demo.own": {"en": "Run your own node: .venv/bin/loaxa sim   (then open the printed port)",
                 "vi": "Chạy nút của riêng bạn: .venv/bin/loaxa sim   (rồi mở cổng được in ra)"},
    "flash.done": {
        "en": "{port}: flashed MicroPython {version} ({chip}, MAC {mac}).",
        "vi": "{port}: đã nạp MicroPython {version} ({chip}, MAC {mac}).",
    },
    "flash.same": {
        "en": "{port}: MicroPython {version} already on the board ({chip}, MAC {mac}); "
        "nothing written.",
        "vi": "{port}: bo mạch đã có MicroPython {version} ({chip}, MAC {mac}); "
        "không cần ghi.",
    },
    "deploy.done": {
        "en": "{port}: deployed {app} ({sent} of {files} files sent, {kb:.1f} KB on the "
        "wire, {s:.1f} s); the application restarted.",
        "vi": "{port}: đã cài {app} (gửi {sent}/{files} tệp, {kb:.1f} KB qua cáp, "
        "{s:.1f} giây); ứng dụng đã khởi động lại.",
    },
    "deploy.same": {
        "en": "{port}: {app} is already installed and verified; nothing sent.",
        "vi": "{port}: {app} đã được cài và kiểm tra; không cần gửi gì.",
    },
    "provision.done": {
        "en": "{port}: node {node} provisioned, keys stored in the inventory, tone played.",
        "vi": "{port}: đã cấu hình nút {node}, khóa đã lưu vào sổ thiết bị, đã phát âm thử.",
    },
    "batch.summary": {
        "en": "{ok} of {n} boards ready.",
        "vi": "{ok}/{n} bo mạch đã sẵn sàng.",
    },
    "rules.ok": {
        "en": "{file}: ok — {windows} windows, {items} schedule items, {exceptions} "
        "exceptions, {size} bytes compiled",
        "vi": "{file}: hợp lệ — {windows} khung giờ, {items} mục lịch phát, {exceptions} "
        "ngoại lệ, {size} byte sau khi biên dịch",
    },
    "rules.wrote": {"en": "wrote {file} ({size} bytes)", "vi": "đã ghi {file} ({size} byte)"},
    "rules.plays": {"en": "  PLAYS at {volume} %", "vi": "  ĐƯỢC PHÁT ở {volume} %"},
    "rules.refused": {"en": "  REFUSED", "vi": "  KHÔNG ĐƯỢC PHÁT"},
    "rules.why": {"en": "  why:   {reason}", "vi": "  lý do: {reason}"},
    "rules.until": {"en": "  until: {until}", "vi": "  đến:   {until}"},
    "rules.no_change": {"en": "no change within a week", "vi": "không đổi trong một tuần"},
    "rules.item": {"en": "  schedule: {item} ({src}) runs until {end}",
                   "vi": "  lịch phát: {item} ({src}) chạy đến {end}"},
    "rules.week": {
        "en": "Week of Monday {monday} (UTC{tz}); times when normal content may play, "
        "at its default volume:",
        "vi": "Tuần bắt đầu thứ Hai {monday} (UTC{tz}); giờ được phát nội dung thông thường, "
        "ở âm lượng mặc định:",
    },
    "rules.zone": {"en": "== zone {zone} ==", "vi": "== vùng {zone} =="},
    "rules.all_nodes": {"en": "== all nodes ==", "vi": "== mọi cụm loa =="},
    "rules.silent": {"en": "silent", "vi": "im lặng"},
    "rules.silent_exc": {"en": "silent (exception {name})", "vi": "im lặng (ngoại lệ {name})"},
    "rules.refused_at": {"en": "refused: {reason}", "vi": "không phát: {reason}"},
    "rules.emergency": {"en": "Emergency plays at any hour at {volume} %.",
                        "vi": "Tin khẩn cấp phát mọi giờ ở {volume} %."},
    "priority.emergency": {"en": "emergency", "vi": "khẩn cấp"},
    "priority.priority": {"en": "priority", "vi": "ưu tiên"},
    "priority.normal": {"en": "normal", "vi": "thông thường"},
    "priority.test": {"en": "test", "vi": "thử nghiệm"},
    "kind.live": {"en": "live", "vi": "trực tiếp"},
    "kind.file": {"en": "file", "vi": "tệp ghi sẵn"},
    "kind.relay": {"en": "relay", "vi": "tiếp sóng"},
    "kind.tone": {"en": "tone", "vi": "âm thử"},
    "reason.emergency": {"en": "emergency: plays at any hour at {volume} %",
                         "vi": "khẩn cấp: phát vào mọi giờ ở {volume} %"},
    "reason.untrusted_live": {
        "en": "clock not trusted: live plays at {volume} %, the lowest window volume",
        "vi": "đồng hồ chưa đáng tin: phát trực tiếp ở {volume} %, mức thấp nhất của các "
        "khung giờ"},
    "reason.untrusted_waits": {
        "en": "clock not trusted (no time sync yet): {kind} content waits for one",
        "vi": "đồng hồ chưa đáng tin (chưa đồng bộ giờ): nội dung {kind} chờ đến khi "
        "đồng bộ"},
    "reason.quiet_hours": {"en": "quiet hours {start}-{end}: only emergency plays",
                           "vi": "giờ yên tĩnh {start}-{end}: chỉ phát tin khẩn cấp"},
    "reason.exception_mutes": {"en": "exception {exception}: silence on these dates",
                               "vi": "ngoại lệ {exception}: im lặng trong những ngày này"},
    "reason.outside_windows": {"en": "outside every broadcast window",
                               "vi": "ngoài mọi khung giờ phát"},
    "reason.outside_zones": {"en": "outside every broadcast window of zone {zones}",
                             "vi": "ngoài mọi khung giờ phát của vùng {zones}"},
    "reason.window_denies_priority": {"en": "window {window} does not allow {priority}",
                                      "vi": "khung giờ {window} không cho phép tin {priority}"},
    "reason.sessions_per_day": {"en": "limit of {limit} sessions a day reached",
                                "vi": "đã đạt giới hạn {limit} buổi phát mỗi ngày"},
    "reason.minutes_per_day": {"en": "limit of {limit} minutes a day reached",
                               "vi": "đã đạt giới hạn {limit} phút phát mỗi ngày"},
    "reason.session_minutes": {"en": "limit of {limit} minutes a session reached",
                               "vi": "đã đạt giới hạn {limit} phút mỗi buổi phát"},
    "reason.window_allows": {
        "en": "window {window} ({start}-{end}) allows {priority} at {volume} % (cap {cap} %)",
        "vi": "khung giờ {window} ({start}-{end}) cho phép tin {priority} ở {volume} % "
        "(tối đa {cap} %)"},
    "reason.item_ended": {"en": "schedule item ended", "vi": "mục lịch phát đã kết thúc"},
    "error": {"en": "error: {msg}", "vi": "lỗi: {msg}"},
    "stream.ready": {
        "en": "Streaming {source} as {codec} {rate} Hz, {ptime} ms packets.",
        "vi": "Đang phát {source} dạng {codec} {rate} Hz, gói {ptime} ms.",
    },
    "stream.udp": {"en": "  RTP/UDP to {dest}", "vi": "  RTP/UDP tới {dest}"},
    "stream.http": {
        "en": "  HTTP (RFC 4571) for nodes on port {port}; session: {session}",
        "vi": "  HTTP (RFC 4571) cho các nút ở cổng {port}; phiên: {session}",
    },
    "stream.sdp": {"en": "  SDP written to {path}", "vi": "  Đã ghi SDP vào {path}"},
    "stream.progress": {
        "en": "\r  {seconds:7.1f} s sent, {clients} HTTP client(s), worst lag {late:.0f} ms",
        "vi": "\r  đã gửi {seconds:7.1f} s, {clients} máy khách HTTP, trễ nhất {late:.0f} ms",
    },
    "stream.done": {
        "en": "\nDone: {seconds:.1f} s of audio in {packets} packets.",
        "vi": "\nXong: {seconds:.1f} s âm thanh trong {packets} gói.",
    },
}


def lang() -> str:
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        v = os.environ.get(var, "")
        if v:
            return "vi" if v.lower().startswith("vi") else "en"
    return "en"


def t(key: str, **kw: object) -> str:
    entry = MESSAGES[key]
    return entry.get(lang(), entry["en"]).format(**kw)

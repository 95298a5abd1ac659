// The schedule without TOML (docs/headend.md, "Schedule forms"): the rules in
// force as forms, written back into the same file by the head-end, checked by
// the one checker, its error shown next to the field it names.
(function () {
  "use strict";
  var sec = document.getElementById("sched");
  if (!sec) return;
  var T = sec.dataset, base = "", zones = [], media = [];
  var DAYS = ["daily", "mon-fri", "mon-sat", "sat-sun", "sun"];
  var PRIOS = T.prios.split(" ");  // the node's list (control/protocol.py), from the page

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "dataset") Object.keys(attrs.dataset).forEach(function (d) { e.dataset[d] = attrs.dataset[d]; });
      else e[k] = attrs[k];
    });
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function field(row, label, input, key) {
    var l = el("label", {className: "f"});
    l.appendChild(document.createTextNode(label + " "));
    input.dataset.f = key;
    l.appendChild(input);
    row.appendChild(l);
    return input;
  }
  function days(value) {
    var s = el("select");
    DAYS.concat(DAYS.indexOf(value) < 0 && value ? [value] : []).forEach(function (d) {
      s.appendChild(el("option", {value: d}, T["d_" + d.replace("-", "_")] || d));
    });
    s.value = value || "daily";
    return s;
  }
  function checks(row, label, all, chosen, key) {
    var fs = el("fieldset", {className: "f"});
    fs.dataset.f = key;
    fs.appendChild(el("legend", {}, label));
    all.forEach(function (z) {
      var l = el("label"), c = el("input", {type: "checkbox", value: z, checked: (chosen || []).indexOf(z) >= 0});
      l.appendChild(c);
      l.appendChild(document.createTextNode(" " + z + " "));
      fs.appendChild(l);
    });
    row.appendChild(fs);
  }
  function err(row) { var p = el("p", {className: "error fielderr"}); row.appendChild(p); }
  function windowRow(w) {
    var row = el("div", {className: "srow window"}), t = (w.time || "-").split("-");
    row.dataset.i = w.i === undefined ? "" : w.i;
    field(row, T.name, el("input", {value: w.name || "", size: 10, required: true}), "name");
    field(row, T.days, days(w.days), "days");
    field(row, T.from, el("input", {type: "time", value: t[0] || ""}), "from");
    field(row, T.to, el("input", {type: "time", value: t[1] === "24:00" ? "23:59" : t[1] || ""}), "to");
    row.dataset.end = t[1] || "";
    field(row, T.volume, el("input", {type: "number", min: 0, max: 100, value: w.volume === null || w.volume === undefined ? "" : w.volume}), "volume");
    field(row, T.max_volume, el("input", {type: "number", min: 0, max: 100, value: w.max_volume === null || w.max_volume === undefined ? "" : w.max_volume}), "max_volume");
    checks(row, T.zones, zones, w.zones, "zones");
    checks(row, T.priorities, PRIOS, w.priorities, "priorities");
    row.appendChild(el("button", {type: "button", className: "remove"}, T.remove));
    err(row);
    document.getElementById("windows").appendChild(row);
  }
  function itemRow(s) {
    var row = el("div", {className: "srow item"});
    row.dataset.i = s.i === undefined ? "" : s.i;
    field(row, T.name, el("input", {value: s.name || "", size: 10, required: true}), "name");
    var src = el("select");
    var opts = media.map(function (m) { return ["file:" + m.name, m.title]; });
    if (s.source && !opts.some(function (o) { return o[0] === s.source; })) opts.unshift([s.source, s.source]);
    opts.forEach(function (o) { src.appendChild(el("option", {value: o[0]}, o[1])); });
    src.value = s.source || (opts[0] || [""])[0];
    field(row, T.source, src, "source");
    field(row, T.start, el("input", {type: "time", value: s.start || ""}), "start");
    field(row, T.minutes, el("input", {type: "number", min: 1, max: 600, value: s.minutes || ""}), "minutes");
    field(row, T.days, days(s.days), "days");
    checks(row, T.zones, zones, s.zones, "zones");
    row.appendChild(el("button", {type: "button", className: "remove"}, T.remove));
    err(row);
    document.getElementById("items").appendChild(row);
  }
  function val(row, f) { return row.querySelector("[data-f=" + f + "]"); }
  function ticked(row, f) {
    return Array.prototype.filter.call(val(row, f).querySelectorAll("input"), function (c) { return c.checked; })
      .map(function (c) { return c.value; });
  }
  function num(row, f) { var v = val(row, f).value; return v === "" ? null : parseInt(v, 10); }
  function collect() {
    var form = document.getElementById("sched-form");
    var out = {base: base, version: form.version.value.trim(),
               quiet_hours: form.quiet.value.trim() || (form.quiet.dataset.had ? "" : null),
               limits: {session_minutes: null, sessions_per_day: null, minutes_per_day: null},
               windows: [], items: []};
    Object.keys(out.limits).forEach(function (k) { var v = form[k].value; out.limits[k] = v === "" ? null : parseInt(v, 10); });
    document.querySelectorAll("#windows .srow").forEach(function (row) {
      var w = {name: val(row, "name").value.trim(), days: val(row, "days").value,
               time: val(row, "from").value + "-" + (val(row, "to").value === "23:59" && row.dataset.end === "24:00" ? "24:00" : val(row, "to").value),
               volume: num(row, "volume"), max_volume: num(row, "max_volume"),
               zones: ticked(row, "zones"), priorities: ticked(row, "priorities")};
      if (row.dataset.i !== "") w.i = parseInt(row.dataset.i, 10);
      out.windows.push(w);
    });
    document.querySelectorAll("#items .srow").forEach(function (row) {
      var s = {name: val(row, "name").value.trim(), source: val(row, "source").value,
               start: val(row, "start").value, minutes: num(row, "minutes"),
               days: val(row, "days").value, zones: ticked(row, "zones")};
      if (row.dataset.i !== "") s.i = parseInt(row.dataset.i, 10);
      out.items.push(s);
    });
    return out;
  }
  function show(j) {
    document.querySelectorAll("#sched .fielderr").forEach(function (p) { p.textContent = ""; });
    document.querySelectorAll("#sched .bad").forEach(function (e) { e.classList.remove("bad"); });
    var out = document.getElementById("sched-result");
    if (!j.check) { out.textContent = j.error || ""; out.className = "error"; return; }
    if (j.check.ok) {
      out.textContent = j.pushed ? T.pushed.replace("@", j.check.version) : T.ok.replace("@", j.check.version);
      out.className = "ok";
      return;
    }
    out.textContent = j.check.error;
    out.className = "error";
    // window[2].time -> the third window row's time
    var m = /^(window|schedule)\[(\d+)\]\.?(\w*)/.exec(j.check.key || "");
    if (!m) return;
    var rows = document.querySelectorAll(m[1] === "window" ? "#windows .srow" : "#items .srow");
    var row = rows[parseInt(m[2], 10)];
    if (!row) return;
    row.querySelector(".fielderr").textContent = j.check.error + (j.check.hint ? " (" + j.check.hint + ")" : "");
    var f = m[3] === "time" ? "from" : m[3];
    var bad = f && val(row, f);
    if (bad) { bad.classList.add("bad"); if (bad.focus) bad.focus(); }
  }
  function save(push) {
    fetch("/api/rules/form", {method: "POST", headers: {"Content-Type": "application/json"},
                              body: JSON.stringify(Object.assign(collect(), {push: push}))})
      .then(function (r) { return r.json(); }).then(function (j) {
        show(j);
        var ta = document.querySelector("#rules textarea");
        if (j.check && j.check.ok && ta) {
          ta.value = j.text;  // the power user's text follows, and the week with it
          document.getElementById("rules-check").click();
          if (j.pushed) load();
        }
      });
  }
  function load() {
    Promise.all([fetch("/api/rules/form").then(function (r) { return r.json(); }),
                 fetch("/api/media").then(function (r) { return r.ok ? r.json() : []; })])
      .then(function (got) {
        var m = got[0], form = document.getElementById("sched-form");
        media = got[1];
        base = m.base || "";
        zones = m.known_zones || [];
        form.version.value = m.version || "";
        form.quiet.value = m.quiet_hours === null || m.quiet_hours === undefined ? "" : m.quiet_hours;
        form.quiet.dataset.had = m.quiet_hours === null || m.quiet_hours === undefined ? "" : "1";
        Object.keys(m.limits).forEach(function (k) { form[k].value = m.limits[k] === null ? "" : m.limits[k]; });
        document.getElementById("windows").innerHTML = "";
        document.getElementById("items").innerHTML = "";
        m.windows.forEach(windowRow);
        m.items.forEach(itemRow);
      });
  }
  sec.addEventListener("click", function (e) {
    var t = e.target;
    if (t.classList.contains("remove")) t.parentNode.remove();
    else if (t.id === "add-window") windowRow({days: "daily", volume: 70, max_volume: 80});
    else if (t.id === "add-item") itemRow({days: "daily", minutes: 10});
    else if (t.id === "sched-check") save(false);
    else if (t.id === "sched-push") save(true);
  });
  load();
})();

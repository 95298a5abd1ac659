// The operator's page (templates/index.html): a file, so the page's
// Content-Security-Policy lets no inline script run. The texts it shows come
// from the page's JSON block #texts, in the page's language.
var T = JSON.parse(document.getElementById("texts").textContent), LANG = T.lang;
// live node rows: the server renders them, SSE sends the new table body
var sched_n = 0;  // the latest request's rows only: an older answer arriving late is stale
function schedule_rows() {
  var n = ++sched_n;
  fetch("/scheduled?lang=" + LANG).then(function (r) { return r.text(); })
    .then(function (t) { if (n === sched_n) document.querySelector("#scheduled tbody").innerHTML = t; });
}
new EventSource("/api/stream?lang=" + LANG).addEventListener("nodes", function (e) {
  document.querySelector("#nodes tbody").innerHTML = e.data;
  schedule_rows();  // a scheduled broadcast that went out changes what nodes play
  relay_rows();
  fetch("/map?lang=" + LANG).then(function (r) { return r.text(); })
    .then(function (t) { document.getElementById("map").innerHTML = t; });
});
function send(path, body, method) {
  var out = document.getElementById("result");
  out.textContent = "";
  fetch(path, {method: method || "POST", headers: {"Content-Type": "application/json"},
               body: body ? JSON.stringify(body) : null})
    .then(function (r) { return r.json().then(function (j) {
      out.textContent = !r.ok ? j.error : j.state === "pending" ?
        T.scheduled_ok.replace("@", j.due) : T.done;
      schedule_rows(); relay_rows(); }); });
}
document.getElementById("scheduled").addEventListener("click", function (e) {
  if (e.target.dataset.cancel) send("/api/scheduled/" + e.target.dataset.cancel, null, "DELETE");
});
var b = document.getElementById("broadcast");
if (b) b.addEventListener("submit", function (e) {
  e.preventDefault();
  var z = Array.prototype.filter.call(b.querySelectorAll("[name=zone]"),
    function (c) { return c.checked; }).map(function (c) { return c.value; });
  var live = b.source.value.trim(), opt = b.file.options[b.file.selectedIndex];
  send("/api/broadcast", {file: live || b.file.value,
                          // a library bulletin's title names it in the play logs and reports
                          title: live || !opt ? "" : opt.text.slice(0, 80),
                          zones: z.length ? z : null,
                          priority: b.priority.value, at: b.at.value || null});
});
function relay_rows() {
  var body = document.querySelector("#relays tbody");
  if (!body) return;
  fetch("/api/live").then(function (r) { return r.json(); }).then(function (rows) {
    body.innerHTML = "";
    rows.forEach(function (x) {
      var tr = document.createElement("tr");
      [x.source, x.listeners, Math.round(x.seconds)].forEach(function (v) {
        var td = document.createElement("td");
        td.textContent = v;
        tr.appendChild(td);
      });
      var td = document.createElement("td"), stop = document.createElement("button");
      stop.textContent = T.stop;
      stop.dataset.stop = x.id;
      td.appendChild(stop);
      tr.appendChild(td);
      body.appendChild(tr);
    });
    document.getElementById("no-relays").hidden = rows.length > 0;
  });
}
var rl = document.getElementById("relays");
if (rl) rl.addEventListener("click", function (e) {
  if (e.target.dataset.stop) send("/api/broadcast/" + e.target.dataset.stop + "/stop");
});
relay_rows();
var em = document.getElementById("emergency");
if (em) em.addEventListener("submit", function (e) {
  e.preventDefault();
  send("/api/emergency", {action: e.submitter.value});
});
var ru = document.getElementById("rules");
function hm(m) { return ("0" + Math.floor(m / 60)).slice(-2) + ":" + ("0" + m % 60).slice(-2); }
function week(w) {
  var days = T.days, out = document.getElementById("week");
  out.innerHTML = "";
  w.forEach(function (z) {
    var h = document.createElement("h4");
    h.textContent = z.zone || T.all_nodes;
    out.appendChild(h);
    z.days.forEach(function (d, k) {
      var row = document.createElement("div"), label = document.createElement("span"),
          bar = document.createElement("div");
      row.className = "day"; bar.className = "bar";
      label.textContent = days[k] + " " + d.date;
      d.blocks.forEach(function (b) {
        var i = document.createElement("i");
        i.style.left = (b.from / 14.4) + "%"; i.style.width = ((b.to - b.from) / 14.4) + "%";
        i.title = hm(b.from) + "-" + hm(b.to) + " " + b.window + " " + b.volume + " %" +
          (b.items.length ? " ▶ " + b.items.join(",") : "");
        i.textContent = b.window + " " + b.volume + "%";
        bar.appendChild(i);
      });
      row.appendChild(label); row.appendChild(bar); out.appendChild(row);
    });
  });
}
function check_rules(then) {
  var err = document.getElementById("rules-error");
  fetch("/api/rules/check", {method: "POST", headers: {"Content-Type": "application/json"},
                             body: JSON.stringify({text: ru.text.value})})
    .then(function (r) { return r.json(); }).then(function (j) {
      if (j.ok) {
        err.className = "online";
        err.textContent = T.rules_ok.replace("@", j.version);
        week(j.week);
        if (then) then();
        return;
      }
      err.className = "offline";
      err.textContent = j.error + (j.hint ? "\n" + j.hint : "");
      if (j.line) {  // the error in place: its line selected in the editor, and quoted
        var lines = ru.text.value.split("\n"), a = 0;
        for (var i = 0; i < j.line - 1; i++) a += lines[i].length + 1;
        ru.text.focus();
        ru.text.setSelectionRange(a, a + lines[j.line - 1].length);
        err.textContent = T.rules_line.replace("@", j.line) +
          ": " + lines[j.line - 1] + "\n" + err.textContent;
      }
    });
}
if (ru) {
  document.getElementById("rules-check").addEventListener("click", function () { check_rules(); });
  document.getElementById("rules-push").addEventListener("click", function () {
    check_rules(function () { send("/api/rules", {text: ru.text.value}); });
  });
  if (ru.text.value) check_rules();
}
var rep = document.getElementById("report");
rep.addEventListener("change", function () {
  var q = "?from=" + rep.from.value + "&to=" + rep.to.value;
  document.getElementById("csv").href = "/api/report" + q + "&format=csv";
  document.getElementById("print").href = "/report" + q + "&lang=" + LANG;
});

// The broadcast page (templates/broadcast.html): a bulletin or a live source to
// zones, now or at a time; what is relayed live now, with its stop button; the
// emergency; the scheduled broadcasts with their cancel buttons. The tables are
// polled while the page is open (cheap: two small answers every 2 s).
(function () {
  "use strict";
  var T = JSON.parse(document.getElementById("texts").textContent), LANG = T.lang;
  var sched_n = 0;  // the latest request's rows only: an older answer arriving late is stale
  function schedule_rows() {
    var n = ++sched_n;
    fetch("/scheduled?lang=" + LANG).then(function (r) { return r.text(); })
      .then(function (t) { if (n === sched_n) document.querySelector("#scheduled tbody").innerHTML = t; });
  }
  var relay_n = 0;
  function relay_rows() {
    var n = ++relay_n, body = document.querySelector("#relays tbody");
    fetch("/api/live").then(function (r) { return r.ok ? r.json() : []; }).then(function (rows) {
      if (n !== relay_n) return;
      body.innerHTML = "";
      var labels = Array.prototype.map.call(
        document.querySelectorAll("#relays thead th"), function (th) { return th.textContent; });
      rows.forEach(function (x) {
        var tr = document.createElement("tr");
        [x.source, x.listeners, Math.round(x.seconds)].forEach(function (v, i) {
          var td = document.createElement("td");
          td.textContent = v;
          td.dataset.label = labels[i];
          tr.appendChild(td);
        });
        var td = document.createElement("td");
        if (document.getElementById("broadcast")) {  // an operator's page
          var stop = document.createElement("button");
          stop.textContent = T.stop;
          stop.dataset.stop = x.id;
          td.appendChild(stop);
        }
        tr.appendChild(td);
        body.appendChild(tr);
      });
      document.getElementById("no-relays").hidden = rows.length > 0;
    });
  }
  function send(path, body, method) {
    var out = document.getElementById("result");
    out.textContent = "";
    fetch(path, {method: method || "POST", headers: {"Content-Type": "application/json"},
                 body: body ? JSON.stringify(body) : null})
      .then(function (r) { return r.json().then(function (j) {
        out.textContent = !r.ok ? j.error : j.state === "pending" ?
          T.scheduled_ok.replace("@", j.due) : T.done;
        out.className = r.ok ? "ok" : "error";
        schedule_rows(); relay_rows(); }); });
  }
  document.getElementById("scheduled").addEventListener("click", function (e) {
    if (e.target.dataset.cancel) send("/api/scheduled/" + e.target.dataset.cancel, null, "DELETE");
  });
  document.getElementById("relays").addEventListener("click", function (e) {
    if (e.target.dataset.stop) send("/api/broadcast/" + e.target.dataset.stop + "/stop");
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
  var em = document.getElementById("emergency");
  if (em) em.addEventListener("submit", function (e) {
    e.preventDefault();
    send("/api/emergency", {action: e.submitter.value});
  });
  relay_rows();
  setInterval(function () {
    if (document.hidden) return;
    relay_rows(); schedule_rows();
  }, 2000);
})();

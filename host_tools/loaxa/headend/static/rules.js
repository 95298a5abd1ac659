// The schedule page's week and raw rules (templates/schedule.html): the rules in
// force checked as the page opens, which draws each zone's week; for the admin
// the editor checks (the first error on its line, selected and quoted) and pushes.
(function () {
  "use strict";
  var T = JSON.parse(document.getElementById("texts").textContent);
  var ru = document.getElementById("rules");
  if (!ru) return;
  function hm(m) { return ("0" + Math.floor(m / 60)).slice(-2) + ":" + ("0" + m % 60).slice(-2); }
  function week(w) {
    var days = T.days, out = document.getElementById("week");
    out.innerHTML = "";
    w.forEach(function (z) {
      var h = document.createElement("h3");
      h.textContent = z.zone || T.all_nodes;
      out.appendChild(h);
      z.days.forEach(function (d, k) {
        var row = document.createElement("div"), label = document.createElement("span"),
            bar = document.createElement("div");
        row.className = "day"; bar.className = "bar";
        label.textContent = days[k] + " " + d.date.slice(8) + "/" + d.date.slice(5, 7);
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
  var check_n = 0;  // only the latest check's answer is shown: an older one arriving late is stale
  function check_rules(then) {
    var err = document.getElementById("rules-error"), n = ++check_n;
    fetch("/api/rules/check", {method: "POST", headers: {"Content-Type": "application/json"},
                               body: JSON.stringify({text: ru.text.value})})
      .then(function (r) { return r.json(); }).then(function (j) {
        if (n !== check_n) return;
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
  var check = document.getElementById("rules-check");
  if (check) {
    check.addEventListener("click", function () { check_rules(); });
    document.getElementById("rules-push").addEventListener("click", function () {
      check_rules(function () {
        var out = document.getElementById("result");
        out.textContent = "";
        fetch("/api/rules", {method: "POST", headers: {"Content-Type": "application/json"},
                             body: JSON.stringify({text: ru.text.value})})
          .then(function (r) { return r.json().then(function (j) {
            out.textContent = r.ok ? T.done : j.error;
            out.className = r.ok ? "ok" : "error";
          }); });
      });
    });
  }
  if (ru.text.value) check_rules();
})();

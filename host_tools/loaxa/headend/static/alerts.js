// The alert banner on every page (docs/headend.md, "Alerts"): the alerts nobody
// has acknowledged yet, each with its time, and for operators the button that
// acknowledges it (audited). Polled: an alert is rare, a poll is cheap.
(function () {
  "use strict";
  var box = document.getElementById("alerts");
  if (!box) return;
  var T = box.dataset, list = box.querySelector("ul");
  function draw(rows) {
    list.innerHTML = "";
    rows.forEach(function (a) {
      var li = document.createElement("li");
      li.id = "alert-" + a.id;
      li.textContent = a.at.replace("T", " ").slice(0, 19) + " · " + a.text + " ";
      if (T.operator) {
        var b = document.createElement("button");
        b.type = "button";
        b.textContent = T.ack;
        b.dataset.ack = a.id;
        li.appendChild(b);
      }
      list.appendChild(li);
    });
    box.hidden = rows.length === 0;
  }
  function load() {
    fetch("/api/alerts?open=true&lang=" + T.lang).then(function (r) {
      return r.ok ? r.json() : [];
    }).then(draw);
  }
  list.addEventListener("click", function (e) {
    if (!e.target.dataset.ack) return;
    fetch("/api/alerts/" + e.target.dataset.ack + "/ack", {method: "POST"}).then(load);
  });
  load();
  setInterval(load, 3000);
})();

// One cluster's controls: volume, a test tone, stop, restart (docs/headend.md).
(function () {
  "use strict";
  var f = document.getElementById("control");
  if (!f) return;
  var out = document.getElementById("control-result");
  f.addEventListener("click", function (e) {
    var cmd = e.target.dataset.cmd;
    if (!cmd) return;
    if (cmd === "reboot" && !window.confirm(f.dataset.sure)) return;
    var body = {cmd: cmd};
    if (cmd === "volume") body.volume = parseInt(f.volume.value, 10);
    fetch("/api/nodes/" + encodeURIComponent(f.dataset.node) + "/command",
          {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)})
      .then(function (r) { return r.json().then(function (j) {
        out.textContent = r.ok ? f.dataset.done : (j.error || JSON.stringify(j));
        out.className = r.ok ? "ok" : "error";
      }); });
  });
})();

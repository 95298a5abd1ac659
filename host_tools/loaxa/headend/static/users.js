// The users page (admin): add or change a user, remove one (docs/headend.md).
(function () {
  "use strict";
  var f = document.getElementById("user-set"), out = document.getElementById("user-result");
  if (!f) return;
  function done(r) {
    return r.json().then(function (j) {
      if (r.ok) { window.location.reload(); return; }
      out.textContent = j.error || JSON.stringify(j);
      out.className = "error";
    });
  }
  f.addEventListener("submit", function (e) {
    e.preventDefault();
    fetch("/api/users/" + encodeURIComponent(f.name.value.trim()),
          {method: "PUT", headers: {"Content-Type": "application/json"},
           body: JSON.stringify({role: f.role.value, password: f.password.value})}).then(done);
  });
  document.getElementById("users").addEventListener("click", function (e) {
    var n = e.target.dataset.remove;
    if (n && window.confirm(f.dataset.sure.replace("@", n)))
      fetch("/api/users/" + encodeURIComponent(n), {method: "DELETE"}).then(done);
  });
})();

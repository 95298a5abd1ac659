// The live node table (templates/nodes.html) on the overview and the clusters
// page: the server renders the rows, server-sent events bring the new table body
// whenever a cluster's state or status changes; the map follows it where the page
// has one.
(function () {
  "use strict";
  var LANG = JSON.parse(document.getElementById("texts").textContent).lang;
  var view = document.getElementById("nodes").dataset.view;
  var src = new EventSource("/api/stream?lang=" + LANG + (view ? "&view=" + view : ""));
  src.addEventListener("nodes", function (e) {
    document.querySelector("#nodes tbody").innerHTML = e.data;
    var map = document.getElementById("map");
    if (map) fetch("/map?lang=" + LANG).then(function (r) { return r.text(); })
      .then(function (t) { map.innerHTML = t; });
  });
  // leaving the page ends the stream at once, not when the server next looks
  window.addEventListener("pagehide", function () { src.close(); });
})();

// The report page (templates/report.html), a file for the page's CSP: print, and
// the CSV link following the dates chosen.
(function () {
  "use strict";
  document.getElementById("print-button").addEventListener("click", function () {
    window.print();
  });
  var rep = document.getElementById("report");
  rep.addEventListener("change", function () {
    document.getElementById("csv").href = "/api/report?from=" + rep.from.value +
      "&to=" + rep.to.value + "&format=csv";
  });
})();

// The report's print button (templates/report.html), a file for the page's CSP.
document.getElementById("print-button").addEventListener("click", function () {
  window.print();
});

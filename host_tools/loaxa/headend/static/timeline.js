// Places the timeline's spans (no inline styles: the page's policy allows none).
(function () {
  "use strict";
  document.querySelectorAll(".timeline i").forEach(function (i) {
    i.style.left = i.dataset.from + "%";
    i.style.width = i.dataset.width + "%";
  });
})();

// The usage console's script: draws each chart from its Vega-Lite spec (as SVG, with the vendored vega-embed), and
// reloads the page when a newer run is published (polls /healthz, which answers the data's as_of).
(function () {
  "use strict";
  document.querySelectorAll("[data-chart]").forEach(function (target) {
    var source = document.getElementById(target.getAttribute("data-chart"));
    if (!source) { return; }
    var spec = JSON.parse(source.textContent);
    vegaEmbed(target, spec, { renderer: "svg", actions: false })
      .then(function () { target.setAttribute("data-rendered", "true"); })
      .catch(function (error) { target.setAttribute("data-render-error", String(error)); });
  });

  var body = document.body;
  var shown = body.getAttribute("data-as-of");
  var seconds = parseInt(body.getAttribute("data-refresh-seconds") || "10", 10);
  if (!shown || !(seconds > 0)) { return; }
  window.setInterval(function () {
    fetch("/healthz", { cache: "no-store", credentials: "same-origin" })
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (health) {
        if (health && health.as_of && health.as_of !== shown) { window.location.reload(); }
      })
      .catch(function () { /* the server restarts or the network is down: try again at the next tick */ });
  }, seconds * 1000);
})();

/* The course's explorers in the static book: switch between frames rendered at build time.
 *
 * Each .reglab-explorer holds its controls (range inputs, selects, a player bar), one <img>
 * and a JSON script with every frame (base64 PNG) and caption, row-major over the controls.
 * Nothing is fetched: the frames are in the page. Written for this course (reglab.explore).
 */
(function () {
  "use strict";

  function setUp(root) {
    if (root.dataset.ready) { return; }
    var data = JSON.parse(root.querySelector("script.reglab-explorer-data").textContent);
    var img = root.querySelector("img.reglab-explorer-frame");
    var caption = root.querySelector(".reglab-explorer-caption");
    var position = data.start.slice();

    function frameIndex() {
      var flat = 0;
      for (var i = 0; i < data.shape.length; i++) { flat = flat * data.shape[i] + position[i]; }
      return flat;
    }

    function show() {
      var k = frameIndex();
      img.src = "data:image/png;base64," + data.frames[k];
      caption.textContent = data.captions[k];
      root.dataset.frame = String(k);
      root.querySelectorAll("[data-control]").forEach(function (el) {
        var c = Number(el.dataset.control);
        if (el.tagName === "OUTPUT") { el.textContent = data.labels[c][position[c]]; }
        else if (el.tagName === "INPUT" || el.tagName === "SELECT") { el.value = String(position[c]); }
      });
    }

    function move(control, to) {
      var last = data.shape[control] - 1;
      position[control] = Math.min(Math.max(to, 0), last);
      show();
    }

    root.querySelectorAll("input[data-control], select[data-control]").forEach(function (el) {
      el.addEventListener("input", function () { move(Number(el.dataset.control), Number(el.value)); });
      el.addEventListener("change", function () { move(Number(el.dataset.control), Number(el.value)); });
    });

    root.querySelectorAll(".reglab-explorer-player").forEach(function (bar) {
      var c = Number(bar.dataset.control);
      var base = Number(bar.dataset.interval) || 250;
      var speed = bar.querySelector(".reglab-explorer-speed");
      var playButton = bar.querySelector('[data-action="play"]');
      var timer = null;
      var playIcon = playButton.textContent;

      function stop() {
        if (timer !== null) { clearTimeout(timer); timer = null; }
        playButton.textContent = playIcon;
        bar.dataset.playing = "0";
      }
      function tick() {
        if (position[c] >= data.shape[c] - 1) { stop(); return; }
        move(c, position[c] + 1);
        timer = setTimeout(tick, base / Number(speed.value));
      }
      function play() {
        if (position[c] >= data.shape[c] - 1) { move(c, 0); }
        playButton.textContent = "\u275a\u275a";  // pause
        bar.dataset.playing = "1";
        timer = setTimeout(tick, base / Number(speed.value));
      }
      bar.querySelectorAll("button[data-action]").forEach(function (button) {
        button.addEventListener("click", function () {
          var action = button.dataset.action;
          if (action === "play") { if (timer === null) { play(); } else { stop(); } }
          else if (action === "restart") { stop(); move(c, 0); }
          else if (action === "back") { stop(); move(c, position[c] - 1); }
          else if (action === "forward") { stop(); move(c, position[c] + 1); }
        });
      });
      speed.addEventListener("change", function () {  // a new speed applies from the next step
        if (timer !== null) { clearTimeout(timer); timer = setTimeout(tick, base / Number(speed.value)); }
      });
    });

    if (root.classList.contains("reglab-zoomable")) {
      img.title = "click to zoom";
      img.addEventListener("click", function () { root.classList.toggle("reglab-zoomed"); });
    }
    root.dataset.ready = "1";
    show();
  }

  function setUpAll() { document.querySelectorAll(".reglab-explorer").forEach(setUp); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", setUpAll); }
  else { setUpAll(); }
})();

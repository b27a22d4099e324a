/* callqa review: player, timeline, hit selection, verdicts without reload, keyboard shortcuts.
   No inline script anywhere (the Content-Security-Policy forbids it); DOM text is set with textContent only. */
(function () {
  "use strict";

  // Queue: a click anywhere on a row opens the call.
  document.querySelectorAll("tr[data-href]").forEach(function (row) {
    row.addEventListener("click", function (event) {
      if (event.target.closest("a, button, input, select")) return;
      window.location.href = row.dataset.href;
    });
  });

  var player = document.getElementById("player");
  if (!player) return;
  var hits = Array.prototype.slice.call(document.querySelectorAll("#hitlist li.hit"));
  var selected = null;

  function csrfToken() {
    var field = document.querySelector('input[name="csrf_token"]');
    return field ? field.value : "";
  }

  function seek(seconds, play) {
    if (!isFinite(seconds)) return;
    player.currentTime = seconds;
    if (play) {
      var started = player.play();
      if (started && started.catch) started.catch(function () {});
    }
  }

  function hitItem(hitId) {
    return document.getElementById("hit-" + hitId);
  }

  function select(item, options) {
    options = options || {};
    selected = item;
    hits.forEach(function (other) { other.classList.toggle("selected", other === item); });
    document.querySelectorAll("[data-hit]").forEach(function (el) {
      el.classList.toggle("active", Boolean(item) && el !== item && el.dataset.hit === item.dataset.hit);
    });
    if (!item) return;
    item.scrollIntoView({block: "nearest"});
    if (options.seek) seek(parseFloat(item.dataset.start), options.play);
    if (window.history && window.history.replaceState) window.history.replaceState(null, "", "#hit-" + item.dataset.hit);
  }

  // Clicks: anything about a hit (list item, highlighted words, timeline marker, evidence link) selects the
  // hit and cues the audio at its start; ▶ buttons, transcript lines and timeline spans seek there and play.
  document.addEventListener("click", function (event) {
    if (event.target.closest("form, details")) return;
    var target = event.target.closest("[data-seek], [data-hit]");
    if (!target) return;
    if (target.tagName === "A") event.preventDefault();
    var item = target.dataset.hit ? hitItem(target.dataset.hit) : null;
    if (item) {
      select(item, {seek: true, play: target.matches("button.seek")});
    } else if (target.dataset.seek !== undefined) {
      seek(parseFloat(target.dataset.seek), true);
    }
  });

  // Playhead on every timeline lane, and the transcript line being spoken.
  var duration = parseFloat((document.getElementById("timeline") || {dataset: {}}).dataset.duration) || 0;
  var lines = Array.prototype.slice.call(document.querySelectorAll(".line.utt"));
  player.addEventListener("timeupdate", function () {
    var x = duration > 0 ? Math.min(100, 100 * player.currentTime / duration).toFixed(2) + "%" : "0%";
    document.querySelectorAll("line.playhead").forEach(function (line) {
      line.setAttribute("x1", x);
      line.setAttribute("x2", x);
    });
    lines.forEach(function (line) {
      var start = parseFloat(line.dataset.seek);
      var next = line.nextElementSibling;
      while (next && !next.classList.contains("utt")) next = next.nextElementSibling;
      var end = next ? parseFloat(next.dataset.seek) : Infinity;
      line.classList.toggle("playing", player.currentTime >= start && player.currentTime < end && !player.paused);
    });
  });

  function showVerdict(box, verdict, extra) {
    box.classList.remove("error");
    box.textContent = "your verdict: ";
    var badge = document.createElement("span");
    badge.className = "verdict v-" + verdict;
    badge.textContent = verdict;
    box.appendChild(badge);
    box.appendChild(document.createTextNode((extra ? " " + extra : "") + " · saved"));
  }

  function send(form, data) {
    var box = form.parentElement.querySelector(".current");
    return fetch(form.action, {
      method: "POST", body: data, credentials: "same-origin",
      headers: {"Accept": "application/json", "X-CSRF-Token": csrfToken()}
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) {
          box.textContent = "not saved: " + (body.error || response.status);
          box.classList.add("error");
          return false;
        }
        showVerdict(box, body.verdict, body.grade || "");
        var item = form.closest("li.hit");
        if (item) item.classList.add("reviewed");
        return true;
      });
    }).catch(function () {
      box.textContent = "not saved: the server did not answer";
      box.classList.add("error");
      return false;
    });
  }

  document.querySelectorAll("form.verdict-form, form.call-form").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var data = new FormData(form);
      if (event.submitter && event.submitter.name) data.set(event.submitter.name, event.submitter.value);
      send(form, data);
    });
  });

  function judge(verdict) {
    if (!selected) return;
    var form = selected.querySelector("form.verdict-form");
    var data = new FormData(form);
    data.set("verdict", verdict);
    var index = hits.indexOf(selected);
    send(form, data).then(function (ok) {
      if (ok && index + 1 < hits.length) select(hits[index + 1], {seek: true});
    });
  }

  function go(id) {
    var link = document.getElementById(id);
    if (link) window.location.href = link.href;
  }

  document.addEventListener("keydown", function (event) {
    if (event.target.closest("input, textarea, select") || event.ctrlKey || event.metaKey || event.altKey) return;
    var index = hits.indexOf(selected);
    switch (event.key) {
      case "j": if (hits.length) select(hits[Math.min(index + 1, hits.length - 1)], {seek: true}); break;
      case "k": if (hits.length) select(hits[Math.max(index - 1, 0)], {seek: true}); break;
      case "p":
        if (selected) seek(parseFloat(selected.dataset.start), true); else seek(player.currentTime, true);
        break;
      case " ":
        if (player.paused) seek(player.currentTime, true); else player.pause();
        break;
      case "c": judge("confirmed"); break;
      case "x": judge("rejected"); break;
      case "u": judge("unsure"); break;
      case "n": go("next-call"); break;
      case "b": go("prev-call"); break;
      default: return;
    }
    event.preventDefault();
  });

  // Opened at /calls/ID#hit-HIT: select that hit and cue the audio there.
  var match = /^#hit-([A-Za-z0-9_-]+)$/.exec(window.location.hash);
  if (match && hitItem(match[1])) select(hitItem(match[1]), {seek: true});
})();

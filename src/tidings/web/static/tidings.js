// Small progressive enhancements; every page works without them.
(function () {
  "use strict";

  // A schedule form's time zone starts as the browser's own, when the list has it.
  function preselectTimeZone(root) {
    var zone;
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
    root.querySelectorAll("select[data-browser-tz]").forEach(function (select) {
      if (zone && select.querySelector('option[value="' + zone + '"]')) { select.value = zone; }
    });
  }

  // Times come as <time datetime="...Z" data-local-time>... UTC</time>; show them in
  // the browser's time zone (the manager's), e.g. "2040-05-01 09:30 Europe/Riga".
  function localTimes(root) {
    var zone, format;
    try {
      zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
      format = new Intl.DateTimeFormat("en-GB", {
        timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", hourCycle: "h23"
      });
    } catch (e) { return; }
    if (!zone) { return; }
    var times = Array.prototype.slice.call(root.querySelectorAll("time[data-local-time]"));
    if (root.matches && root.matches("time[data-local-time]")) { times.push(root); }
    times.forEach(function (time) {
      var moment = new Date(time.getAttribute("datetime"));
      if (isNaN(moment.getTime())) { return; }
      var part = {};
      format.formatToParts(moment).forEach(function (p) { part[p.type] = p.value; });
      time.title = time.textContent;
      time.textContent = part.year + "-" + part.month + "-" + part.day + " " + part.hour +
        ":" + part.minute + " " + zone.replace(/_/g, " ");
      time.removeAttribute("data-local-time");
    });
  }

  // htmx swaps in fresh server-rendered parts (the live status line): convert them too.
  document.addEventListener("htmx:load", function (event) { localTimes(event.target); });

  // A form's hidden input with data-mirror="ID" takes the value of the field ID when it
  // is sent (the template editor's test send uses the customer chosen for the preview).
  document.addEventListener("submit", function (event) {
    event.target.querySelectorAll("input[data-mirror]").forEach(function (input) {
      var source = document.getElementById(input.getAttribute("data-mirror"));
      if (source) { input.value = source.value; }
    });
  });

  // The rule builder's Remove buttons, and which rule editor (builder or JSON) is shown.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-remove-row]");
    if (!button) { return; }
    var row = button.closest(".rule-row");
    var form = row.closest("form");
    var next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    if (form) { form.dispatchEvent(new Event("change", { bubbles: true })); }
    var focus = next ? next.querySelector("select, input") : (form && form.querySelector("[name=add_row]"));
    if (focus) { focus.focus(); }
  });

  function showRuleMode(form) {
    var checked = form.querySelector("input[name=mode]:checked");
    if (!checked) { return; }
    form.querySelectorAll("[data-mode]").forEach(function (part) {
      part.hidden = part.getAttribute("data-mode") !== checked.value;
    });
  }

  document.addEventListener("change", function (event) {
    if (event.target.name === "mode") { showRuleMode(event.target.form); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    preselectTimeZone(document);
    localTimes(document);
    var form = document.getElementById("segment-form");
    if (form) { showRuleMode(form); }
  });
})();

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
    var form = document.getElementById("segment-form");
    if (form) { showRuleMode(form); }
  });
})();

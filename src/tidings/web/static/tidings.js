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

  // Confirmations. A button with data-opens="ID" shows <dialog id=ID> as a modal; without
  // JavaScript its GET form asks for the page with that dialog open (a plain <dialog open>),
  // which is also how the server shows a dialog again with a form error in it.
  var opener = null;

  function showDialog(dialog) {
    if (!dialog || typeof dialog.showModal !== "function") { return false; }
    if (dialog.open) { dialog.close(); }
    dialog.showModal();
    return true;
  }

  // Focus goes back to the control that opened the dialog, or to its menu's button when
  // that control was in a menu which is closed now.
  function returnFocus() {
    if (!opener) { return; }
    var target = opener;
    if (!target.offsetParent) {
      var menu = target.closest(".menu");
      target = menu && menu.querySelector("[data-menu-button]");
    }
    if (target) { target.focus(); }
    opener = null;
  }

  // A menu button (aria-haspopup, aria-expanded) shows the element it controls.
  function setMenu(button, open) {
    var menu = document.getElementById(button.getAttribute("aria-controls"));
    if (!menu) { return; }
    menu.hidden = !open;
    button.setAttribute("aria-expanded", open ? "true" : "false");
  }

  function closeMenus() {
    document.querySelectorAll("[data-menu-button][aria-expanded=true]").forEach(function (b) {
      setMenu(b, false);
    });
  }

  function menuItems(menu) {
    return Array.prototype.slice.call(menu.querySelectorAll("button"));
  }

  // Copy buttons: data-copy="ID" puts the text of the element ID on the clipboard.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    var area = document.createElement("textarea");  // plain-HTTP sites have no clipboard API
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var done = document.execCommand("copy");
    area.remove();
    return done ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copyFrom(button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) { return; }
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    copyText(source.textContent.trim()).then(function () {
      button.textContent = "Copied";
    }, function () {
      button.textContent = "Select and copy it by hand";
    });
    setTimeout(function () { button.textContent = label; }, 2000);
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    var copy = target.closest("[data-copy]");
    if (copy) { copyFrom(copy); return; }
    var opens = target.closest("[data-opens]");
    if (opens && showDialog(document.getElementById(opens.getAttribute("data-opens")))) {
      event.preventDefault();
      opener = opens;
      closeMenus();
      return;
    }
    var back = target.closest("[data-close-dialog]");
    if (back && back.closest("dialog")) {
      event.preventDefault();
      back.closest("dialog").close();
      return;
    }
    var menuButton = target.closest("[data-menu-button]");
    if (menuButton) {
      event.preventDefault();
      var open = menuButton.getAttribute("aria-expanded") !== "true";
      closeMenus();
      setMenu(menuButton, open);
      var menu = document.getElementById(menuButton.getAttribute("aria-controls"));
      if (open && menu && menuItems(menu).length) { menuItems(menu)[0].focus(); }
      return;
    }
    if (!target.closest(".menu-body")) { closeMenus(); }
  });

  document.addEventListener("keydown", function (event) {
    var menu = event.target.closest && event.target.closest(".menu-body");
    if (!menu) { return; }
    var button = document.querySelector('[aria-controls="' + menu.id + '"]');
    var items = menuItems(menu);
    var at = items.indexOf(event.target);
    if (event.key === "Escape" && button) {
      setMenu(button, false);
      button.focus();
    } else if ((event.key === "ArrowDown" || event.key === "ArrowUp") && items.length) {
      var step = event.key === "ArrowDown" ? 1 : -1;
      items[(at + step + items.length) % items.length].focus();
    } else {
      return;
    }
    event.preventDefault();
  });

  // A menu closes when focus leaves it (Tab past its last item).
  document.addEventListener("focusin", function (event) {
    if (!event.target.closest || !event.target.closest(".menu")) { closeMenus(); }
  });

  document.addEventListener("close", function (event) {
    if (event.target.tagName === "DIALOG") { returnFocus(); }
  }, true);

  // The new-mailing form: a select with data-channel-from="ID" offers only the options
  // (optgroups with data-channel) of the channel chosen in the select ID, and parts marked
  // data-for-channel show only for theirs. Without JavaScript all are offered, with their
  // channel in the label, and the server refuses a template of the other channel.
  function followChannel(form) {
    form.querySelectorAll("select[data-channel-from]").forEach(function (select) {
      var channel = document.getElementById(select.getAttribute("data-channel-from")).value;
      select.querySelectorAll("optgroup[data-channel]").forEach(function (group) {
        var other = group.getAttribute("data-channel") !== channel;
        group.hidden = other;
        group.disabled = other;
      });
      var chosen = select.selectedOptions[0];
      if (chosen && chosen.parentElement.disabled) { select.value = ""; }
    });
    var picked = form.querySelector("[data-channel-choice]");
    form.querySelectorAll("[data-for-channel]").forEach(function (part) {
      var other = Boolean(picked) && part.getAttribute("data-for-channel") !== picked.value;
      part.hidden = other;
      part.querySelectorAll("input, select, textarea").forEach(function (field) {
        field.disabled = other;  // not sent either
      });
    });
  }

  document.addEventListener("change", function (event) {
    if (event.target.hasAttribute("data-channel-choice")) { followChannel(event.target.form); }
  });

  // The import's mapping step: a column's attribute name box shows only when the
  // column is to become an attribute (without JavaScript it always shows).
  function followTarget(select) {
    var box = document.getElementById(select.getAttribute("data-attribute-name"));
    if (box) { box.hidden = select.value !== "attribute"; }
  }

  document.addEventListener("change", function (event) {
    if (event.target.hasAttribute && event.target.hasAttribute("data-attribute-name")) {
      followTarget(event.target);
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("select[data-attribute-name]").forEach(followTarget);
    preselectTimeZone(document);
    localTimes(document);
    var form = document.getElementById("segment-form");
    if (form) { showRuleMode(form); }
    document.querySelectorAll("[data-channel-choice]").forEach(function (choice) {
      followChannel(choice.form);
    });
    document.querySelectorAll("[data-copy][hidden]").forEach(function (button) {
      button.hidden = false;
    });
    // A dialog the server showed open (a form error, or a page asked for without
    // JavaScript) becomes a modal one.
    document.querySelectorAll("dialog[open]").forEach(showDialog);
  });
})();

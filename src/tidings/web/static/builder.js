// The template editors' scripts: the block builder, and inserting personal details.
//
// The builder's state is the list of blocks, kept as JSON in the form's hidden
// "blocks" field: that is what a save and the live preview post. Every change goes
// through setState/commit, which keep an undo stack; the list is drawn again from
// the state after each change of structure (add, move, duplicate, delete, undo),
// while typing only updates the state (the cursor stays where it is).
(function () {
  "use strict";

  var DEFAULTS = {
    heading: { text: "A heading", level: 1, align: "left" },
    text: { html: "<p>Some text.</p>" },
    image: { src: "", alt: "", href: "", width: 0 },
    button: { label: "Shop now", url: "", color: "#2450a6", align: "center" },
    divider: { color: "#d5d9e0" },
    spacer: { height: 24 },
    columns: { columns: [emptyColumn(), emptyColumn()] },
    product: { image: "", name: "A product", price: "", description: "", url: "", button_label: "Buy now" },
    social: { links: [{ network: "instagram", url: "" }] },
    footer: { text: "", address: "", unsubscribe_label: "Unsubscribe" }
  };

  function emptyColumn() {
    return { image: "", alt: "", heading: "", text: "", button_label: "", button_url: "" };
  }

  function copy(value) { return JSON.parse(JSON.stringify(value)); }

  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"]; }
    catch (e) { return ""; }
  }

  // -- paths: "columns.1.heading" in a block -------------------------------------------

  function getPath(object, path) {
    return path.split(".").reduce(function (at, part) {
      return at == null ? undefined : at[part];
    }, object);
  }

  function setPath(object, path, value) {
    var parts = path.split(".");
    var at = object;
    for (var i = 0; i < parts.length - 1; i++) { at = at[parts[i]]; }
    at[parts[parts.length - 1]] = value;
  }

  function pathOf(field) {
    var prefix = "";
    var holder = field.parentElement && field.parentElement.closest("[data-prefix]");
    while (holder) {
      prefix = holder.getAttribute("data-prefix") + prefix;
      holder = holder.parentElement && holder.parentElement.closest("[data-prefix]");
    }
    return prefix + field.getAttribute("data-key");
  }

  // -- the builder ---------------------------------------------------------------------

  function Builder(root) {
    this.root = root;
    this.form = root.closest("form");
    this.input = document.getElementById("blocks-json");
    this.list = root.querySelector("#block-list");
    this.status = root.querySelector("#builder-status");
    this.undoButton = root.querySelector("[data-undo]");
    this.names = {};
    var self = this;
    root.querySelectorAll("#add-type option").forEach(function (o) { self.names[o.value] = o.textContent; });
    try { this.state = JSON.parse(this.input.value || "[]"); } catch (e) { this.state = []; }
    if (!Array.isArray(this.state)) { this.state = []; }
    this.history = [];
    this.typing = null;  // the field whose typing the last undo step covers
    this.dragged = null;
    this.bind();
    this.render();
  }

  Builder.prototype.save = function () {
    this.input.value = JSON.stringify(this.state);
    this.undoButton.disabled = this.history.length === 0;
    document.body.dispatchEvent(new CustomEvent("blocks-changed", { bubbles: true }));
  };

  // A change of structure: remember the state before it, apply it, draw again.
  Builder.prototype.commit = function (change, focus) {
    this.history.push(JSON.stringify(this.state));
    if (this.history.length > 200) { this.history.shift(); }
    this.typing = null;
    change(this.state);
    this.save();
    this.render(focus);
  };

  Builder.prototype.undo = function () {
    if (!this.history.length) { return; }
    this.state = JSON.parse(this.history.pop());
    this.typing = null;
    this.save();
    this.render();
    this.say("Undone.");
    this.undoButton.focus();
    if (this.undoButton.disabled) { this.root.querySelector("[data-add]").focus(); }
  };

  Builder.prototype.say = function (text) {
    this.status.textContent = "";
    var status = this.status;
    setTimeout(function () { status.textContent = text; }, 30);
  };

  Builder.prototype.title = function (index) {
    var block = this.state[index];
    return "Block " + (index + 1) + ": " + (this.names[block.type] || block.type);
  };

  Builder.prototype.render = function (focus) {
    var self = this;
    this.list.textContent = "";
    this.state.forEach(function (block, index) {
      self.list.appendChild(self.drawBlock(block, index));
    });
    if (focus) {
      var target = this.list.querySelector(focus);
      if (target) { target.focus(); }
    }
  };

  Builder.prototype.drawBlock = function (block, index) {
    var item = document.importNode(document.getElementById("tpl-block").content.firstElementChild, true);
    var name = this.names[block.type] || block.type;
    var label = "block " + (index + 1) + " (" + name + ")";
    item.setAttribute("data-index", String(index));
    item.setAttribute("aria-label", this.title(index));
    item.querySelector(".block-title").textContent = this.title(index);
    item.querySelector(".block-title").tabIndex = -1;
    var labels = { up: "Move up " + label, down: "Move down " + label,
                   duplicate: "Duplicate " + label, "delete": "Delete " + label };
    item.querySelectorAll("[data-action]").forEach(function (button) {
      button.setAttribute("aria-label", labels[button.getAttribute("data-action")]);
    });
    item.querySelector('[data-action="up"]').disabled = index === 0;
    item.querySelector('[data-action="down"]').disabled = index === this.state.length - 1;
    var body = item.querySelector(".block-body");
    var fields = document.getElementById("tpl-" + block.type);
    if (fields) { body.appendChild(document.importNode(fields.content, true)); }
    if (block.type === "columns") { this.drawColumns(body, block); }
    if (block.type === "social") { this.drawLinks(body, block); }
    body.querySelectorAll("[data-rich]").forEach(function (rich) {
      rich.setAttribute("aria-label", rich.getAttribute("aria-label") + " of block " + (index + 1));
    });
    this.fill(body, block);
    return item;
  };

  Builder.prototype.drawColumns = function (body, block) {
    var holder = body.querySelector(".column-list");
    body.querySelector("[data-count]").value = String(block.columns.length);
    block.columns.forEach(function (column, n) {
      var part = document.importNode(document.getElementById("tpl-column").content.firstElementChild, true);
      part.setAttribute("data-prefix", "columns." + n + ".");
      part.querySelector("legend").textContent = "Column " + (n + 1);
      holder.appendChild(part);
    });
  };

  Builder.prototype.drawLinks = function (body, block) {
    var holder = body.querySelector(".link-list");
    block.links.forEach(function (link, n) {
      var part = document.importNode(document.getElementById("tpl-link").content.firstElementChild, true);
      part.setAttribute("data-prefix", "links." + n + ".");
      part.querySelector("[data-remove-link]").setAttribute("aria-label", "Remove link " + (n + 1));
      holder.appendChild(part);
    });
  };

  Builder.prototype.fill = function (body, block) {
    body.querySelectorAll("[data-key]").forEach(function (field) {
      var value = getPath(block, pathOf(field));
      if (field.hasAttribute("data-rich")) {
        field.innerHTML = value || "";  // cleaned by the server on every save and preview
      } else if (value != null) {
        field.value = String(value);
      } else if (field.tagName !== "SELECT") {
        field.value = "";
      }
    });
  };

  Builder.prototype.indexOf = function (element) {
    var item = element.closest("li.block");
    return item ? Number(item.getAttribute("data-index")) : -1;
  };

  // Typing: update the state in place; one undo step per field typed in.
  Builder.prototype.edited = function (field) {
    var index = this.indexOf(field);
    if (index < 0) { return; }
    if (this.typing !== field) {
      this.history.push(JSON.stringify(this.state));
      this.typing = field;
    }
    var value = field.hasAttribute("data-rich") ? field.innerHTML : field.value;
    if (field.getAttribute("data-kind") === "int") { value = value === "" ? 0 : Number(value); }
    setPath(this.state[index], pathOf(field), value);
    this.save();
  };

  Builder.prototype.act = function (button) {
    var index = this.indexOf(button);
    var action = button.getAttribute("data-action");
    var self = this;
    var count = this.state.length;
    if (action === "up" || action === "down") {
      var to = action === "up" ? index - 1 : index + 1;
      if (to < 0 || to >= count) { return; }
      var keep = to === 0 ? "down" : (to === count - 1 ? "up" : action);
      this.commit(function (state) { state.splice(to, 0, state.splice(index, 1)[0]); },
                  'li[data-index="' + to + '"] [data-action="' + keep + '"]');
      this.say(this.title(to) + ", moved " + action + ".");
    } else if (action === "duplicate") {
      this.commit(function (state) { state.splice(index + 1, 0, copy(state[index])); },
                  'li[data-index="' + (index + 1) + '"] [data-action="duplicate"]');
      this.say(this.title(index + 1) + " added, a copy of block " + (index + 1) + ".");
    } else if (action === "delete") {
      var gone = this.title(index);
      var next = Math.min(index, count - 2);
      this.commit(function (state) { state.splice(index, 1); },
                  next >= 0 ? 'li[data-index="' + next + '"] .block-title' : null);
      if (next < 0) { self.root.querySelector("[data-add]").focus(); }
      this.say(gone + " deleted. Undo brings it back.");
    }
  };

  Builder.prototype.add = function () {
    var type = this.root.querySelector("#add-type").value;
    var block = Object.assign({ type: type }, copy(DEFAULTS[type] || {}));
    var last = this.state[this.state.length - 1];
    var at = last && last.type === "footer" && type !== "footer" ? this.state.length - 1 : this.state.length;
    this.commit(function (state) { state.splice(at, 0, block); },
                'li[data-index="' + at + '"] .block-body input, li[data-index="' + at +
                '"] .block-body [data-rich], li[data-index="' + at + '"] .block-body select');
    this.say(this.title(at) + " added.");
  };

  Builder.prototype.upload = function (input) {
    var file = input.files && input.files[0];
    if (!file) { return; }
    var self = this;
    var index = this.indexOf(input);
    var path = (input.closest("[data-prefix]") ? input.closest("[data-prefix]").getAttribute("data-prefix") : "") +
      input.getAttribute("data-upload-for");
    var status = input.closest(".image-field").querySelector(".upload-status");
    status.textContent = "Uploading " + file.name + "…";
    var body = new FormData();
    body.append("file", file);
    fetch(this.root.getAttribute("data-upload"), {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRF-Token": csrfToken() }
    }).then(function (response) {
      return response.json().then(function (data) { return { ok: response.ok, data: data }; });
    }).then(function (answer) {
      if (!answer.ok) { status.textContent = answer.data.error || "The upload failed."; return; }
      var image = answer.data;
      self.commit(function (state) {
        setPath(state[index], path, image.url);
        if (state[index].type === "image" && !state[index].width && image.width < 560) {
          state[index].width = image.width;
        }
      });
      var item = self.list.querySelector('li[data-index="' + index + '"]');
      var shown = item && item.querySelector('[data-upload-for="' + input.getAttribute("data-upload-for") + '"]');
      if (shown) {
        shown.closest(".image-field").querySelector(".upload-status").textContent =
          "Uploaded " + image.name + " (" + image.width + " × " + image.height + " pixels).";
        shown.focus();
      }
    }).catch(function () { status.textContent = "The upload failed: check the connection."; });
  };

  Builder.prototype.bind = function () {
    var self = this;
    this.root.addEventListener("input", function (event) {
      var field = event.target.closest("[data-key]");
      if (field) { self.edited(field); }
    });
    this.root.addEventListener("change", function (event) {
      var target = event.target;
      if (target.hasAttribute("data-upload-for")) { self.upload(target); return; }
      if (target.hasAttribute("data-count")) {
        var index = self.indexOf(target);
        var wanted = Number(target.value);
        self.commit(function (state) {
          var columns = state[index].columns;
          while (columns.length < wanted) { columns.push(emptyColumn()); }
          columns.length = wanted;
        }, 'li[data-index="' + index + '"] [data-count]');
        return;
      }
      var field = target.closest("[data-key]");
      if (field && field.tagName === "SELECT") { self.edited(field); }
    });
    this.root.addEventListener("click", function (event) {
      var target = event.target;
      var button = target.closest("button");
      if (!button || !self.root.contains(button)) { return; }
      if (button.hasAttribute("data-action")) { self.act(button); }
      else if (button.hasAttribute("data-add")) { self.add(); }
      else if (button.hasAttribute("data-undo")) { self.undo(); }
      else if (button.hasAttribute("data-add-link")) {
        var at = self.indexOf(button);
        self.commit(function (state) { state[at].links.push({ network: "website", url: "" }); },
                    'li[data-index="' + at + '"] .social-link:last-child input');
      } else if (button.hasAttribute("data-remove-link")) {
        var index = self.indexOf(button);
        var n = Number(button.closest("[data-prefix]").getAttribute("data-prefix").split(".")[1]);
        self.commit(function (state) { state[index].links.splice(n, 1); },
                    'li[data-index="' + index + '"] [data-add-link]');
      } else if (button.hasAttribute("data-command")) {
        self.format(button);
      }
    });
    // Formatting buttons must not take the selection away from the text.
    this.root.addEventListener("mousedown", function (event) {
      if (event.target.closest("[data-command]")) { event.preventDefault(); }
    });
    document.addEventListener("keydown", function (event) {
      var inText = event.target.closest && event.target.closest("input, textarea, select, [contenteditable]");
      if ((event.ctrlKey || event.metaKey) && !event.shiftKey && event.key === "z" && !inText) {
        event.preventDefault();
        self.undo();
      }
    });
    // Drag a block by its handle; drop it before or after another.
    this.list.addEventListener("dragstart", function (event) {
      var handle = event.target.closest && event.target.closest(".handle");
      if (!handle) { return; }
      self.dragged = self.indexOf(handle);
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", String(self.dragged));
      handle.closest("li.block").classList.add("dragging");
    });
    this.list.addEventListener("dragover", function (event) {
      if (self.dragged === null) { return; }
      event.preventDefault();
      var item = event.target.closest && event.target.closest("li.block");
      self.list.querySelectorAll(".drop-before, .drop-after").forEach(function (li) {
        li.classList.remove("drop-before", "drop-after");
      });
      if (item) {
        var box = item.getBoundingClientRect();
        item.classList.add(event.clientY < box.top + box.height / 2 ? "drop-before" : "drop-after");
      }
    });
    this.list.addEventListener("drop", function (event) {
      if (self.dragged === null) { return; }
      event.preventDefault();
      var item = event.target.closest && event.target.closest("li.block");
      var from = self.dragged;
      self.dragged = null;
      if (!item) { self.render(); return; }
      var over = self.indexOf(item);
      var box = item.getBoundingClientRect();
      var to = event.clientY < box.top + box.height / 2 ? over : over + 1;
      if (to > from) { to -= 1; }
      if (to === from) { self.render(); return; }
      self.commit(function (state) { state.splice(to, 0, state.splice(from, 1)[0]); },
                  'li[data-index="' + to + '"] .block-title');
      self.say(self.title(to) + ", moved.");
    });
    this.list.addEventListener("dragend", function () {
      self.dragged = null;
      self.list.querySelectorAll(".dragging, .drop-before, .drop-after").forEach(function (li) {
        li.classList.remove("dragging", "drop-before", "drop-after");
      });
    });
  };

  Builder.prototype.format = function (button) {
    var rich = button.closest(".rich").querySelector("[data-rich]");
    var command = button.getAttribute("data-command");
    if (document.activeElement !== rich) { rich.focus(); }
    var value = null;
    if (command === "createLink") {
      value = window.prompt("Link address (https://…)", "https://");
      if (!value || value === "https://") { return; }
    }
    document.execCommand(command, false, value);
    this.edited(rich);
  };

  // -- personal details, in every editor -----------------------------------------------

  function Picker(picker) {
    this.picker = picker;
    this.form = picker.closest("form") || document.getElementById("template-form");
    this.last = null;  // the text field edited last
    this.range = null;  // the cursor in it, when it is rich text
    this.status = picker.querySelector("#variable-status");
    picker.hidden = false;
    var self = this;
    document.addEventListener("focusin", function (event) { self.remember(event.target); });
    document.addEventListener("selectionchange", function () {
      var selection = window.getSelection();
      if (self.last && self.last.isContentEditable && selection.rangeCount &&
          self.last.contains(selection.anchorNode)) {
        self.range = selection.getRangeAt(0).cloneRange();
      }
    });
    picker.querySelector("[data-insert-variable]").addEventListener("click", function () { self.insert(); });
  }

  Picker.prototype.remember = function (target) {
    if (!target || !target.closest || this.picker.contains(target)) { return; }
    var isText = target.matches("textarea, [contenteditable], input:not([type]), input[type=text], input[type=url]");
    if (isText && (this.form.contains(target) || target.closest("[data-builder]"))) {
      if (target !== this.last) { this.range = null; }
      this.last = target;
    }
  };

  Picker.prototype.text = function () {
    var variable = this.picker.querySelector("#variable").value;
    var fallback = this.picker.querySelector("#fallback").value.trim();
    if (!fallback) { return "{{ " + variable + " }}"; }
    return "{{ " + variable + ' or "' + fallback.replace(/\\/g, "\\\\").replace(/"/g, '\\"') + '" }}';
  };

  Picker.prototype.insert = function () {
    var field = this.last;
    var text = this.text();
    if (!field || !document.body.contains(field)) {
      this.status.textContent = "Click in a text first, where the detail should go.";
      return;
    }
    if (field.isContentEditable) {
      field.focus();
      var selection = window.getSelection();
      selection.removeAllRanges();
      if (this.range) { selection.addRange(this.range); }
      else { var end = document.createRange(); end.selectNodeContents(field); end.collapse(false); selection.addRange(end); }
      document.execCommand("insertText", false, text);
    } else {
      var start = field.selectionStart == null ? field.value.length : field.selectionStart;
      var stop = field.selectionEnd == null ? start : field.selectionEnd;
      field.setRangeText(text, start, stop, "end");
      field.focus();
      field.dispatchEvent(new Event("input", { bubbles: true }));
    }
    this.status.textContent = "Inserted " + text + ".";
  };

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.querySelector("[data-builder]");
    if (root) { root.builder = new Builder(root); }
    var picker = document.querySelector("[data-variable-picker]");
    if (picker) { picker.picker = new Picker(picker); }
  });
})();

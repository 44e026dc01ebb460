// The "Try it" panel under every figure of the book.
//
// Each figure's parameters come from generated/figures.js (written by
// `pushpull book` from src/book/figures.rs). When the book is served by
// `pushpull book --serve`, Run asks the serving process for a real run
// (POST /api/run) and puts its report and diagram in place of the figure's.
// Read from files, the panel shows the command to run in a terminal instead.
// The simulation stays in Rust: this page only asks and shows.
//
// A page opened with ?set=KEY=VALUE&set=...&seed=N&window=FROM..TO fills its
// first figure's panel with those values and runs it: a link to share an
// experiment.
(function () {
  "use strict";

  // POSIX shell quoting, as src/book/figures.rs's shell_quote does it.
  function shellQuote(word) {
    if (word !== "" && /^[A-Za-z0-9_\-.\/=:,+@%]+$/.test(word)) return word;
    return "'" + word.replace(/'/g, "'\\''") + "'";
  }

  function commandFor(req) {
    var cmd = "pushpull run " + shellQuote(req.scenario);
    req.set.forEach(function (s) { cmd += " --set " + shellQuote(s); });
    if (req.seed !== null) cmd += " --seed " + req.seed;
    cmd += " --diagram run.svg";
    if (req.window) cmd += " --window " + shellQuote(req.window);
    return cmd;
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { node.appendChild(c); });
    return node;
  }

  // The report shown with a figure: the nearest code block before it, in
  // the same section, that holds a report (every report has a trace_hash).
  function reportBlockBefore(node) {
    for (var n = node.previousElementSibling; n; n = n.previousElementSibling) {
      if (/^H[1-3]$/.test(n.tagName)) return null;
      if (n.tagName === "PRE" && n.textContent.indexOf("trace_hash") >= 0) {
        return n.querySelector("code") || n;
      }
    }
    return null;
  }

  function Panel(name, figure, img, served) {
    var self = this;
    this.figure = figure;
    this.img = img;
    this.holder = img.closest("p") || img;
    this.report = reportBlockBefore(this.holder);
    this.served = served;
    this.rows = el("div", { class: "pp-sets" });
    this.seed = el("input", { class: "pp-seed", type: "number", min: "0", value: String(figure.seed) });
    this.window = el("input", { class: "pp-window", value: figure.window || "", placeholder: "whole run" });
    this.seedError = el("div", { class: "pp-error" });
    this.windowError = el("div", { class: "pp-error" });
    this.error = el("div", { class: "pp-error" });
    this.status = el("span", { class: "pp-status" });
    this.command = el("code", { class: "pp-command" });
    figure.set.forEach(function (s) { self.addRow(s); });
    var add = el("button", { type: "button", class: "pp-add", text: "+ parameter" });
    add.onclick = function () { self.addRow("").querySelector("input").focus(); };
    var controls = el("div", { class: "pp-controls" }, [
      el("label", { text: "seed " }, [this.seed]), this.seedError,
      el("label", { text: "window " }, [this.window]), this.windowError,
    ]);
    var body = [
      el("p", { class: "pp-help", text: "Parameters as --set lines (see src/scenario/mod.rs for every one), the seed and the diagram's window." }),
      this.rows, add, controls,
    ];
    if (served) {
      this.button = el("button", { type: "button", class: "pp-run", text: "Run" });
      this.button.onclick = function () { self.run(); };
      body.push(el("div", { class: "pp-actions" }, [this.button, this.status]));
      body.push(this.error);
      body.push(el("p", { class: "pp-help", text: "The same run in a terminal:" }));
    } else {
      body.push(el("p", { class: "pp-help", text: "Read from files, this page cannot run anything: run this in a terminal (or read the book with `cargo run --release -- book --serve` to run it here):" }));
    }
    body.push(el("pre", {}, [this.command]));
    this.node = el("details", { class: "pp-try" }, [
      el("summary", { text: "Try it: change this run (" + figure.scenario + ")" }),
    ].concat(body));
    this.node.addEventListener("input", function () { self.showCommand(); });
    this.holder.parentNode.insertBefore(this.node, this.holder.nextSibling);
    this.showCommand();
  }

  Panel.prototype.addRow = function (value) {
    var self = this;
    var input = el("input", { class: "pp-set", value: value, placeholder: "key=value", spellcheck: "false" });
    var remove = el("button", { type: "button", class: "pp-remove", title: "remove", text: "\u00d7" });
    var row = el("div", { class: "pp-row" }, [input, remove, el("div", { class: "pp-error" })]);
    remove.onclick = function () { row.remove(); self.showCommand(); };
    this.rows.appendChild(row);
    return row;
  };

  Panel.prototype.request = function () {
    var set = [];
    this.rows.querySelectorAll("input.pp-set").forEach(function (i) {
      if (i.value.trim() !== "") set.push(i.value.trim());
    });
    var seed = this.seed.value.trim() === "" ? null : Number(this.seed.value);
    return {
      scenario: this.figure.scenario,
      set: set,
      seed: seed,
      window: this.window.value.trim() || null,
    };
  };

  Panel.prototype.showCommand = function () {
    this.command.textContent = commandFor(this.request());
  };

  Panel.prototype.clearErrors = function () {
    this.node.querySelectorAll(".pp-error").forEach(function (e) { e.textContent = ""; });
  };

  // The CLI's message names the field it is about ("network.loss: is 1.5,
  // ..."): show it beside the line that sets that field.
  Panel.prototype.showError = function (message) {
    var target = this.error;
    if (/^--window/.test(message)) target = this.windowError;
    else if (/^seed\b/.test(message)) target = this.seedError;
    else {
      this.rows.querySelectorAll(".pp-row").forEach(function (row) {
        var key = row.querySelector("input").value.split("=")[0].trim();
        if (key && (message.indexOf(key + ":") >= 0 || message.indexOf("--set " + key) >= 0)) {
          target = row.querySelector(".pp-error");
        }
      });
    }
    target.textContent = "error: " + message;
  };

  Panel.prototype.run = function () {
    var self = this;
    var req = this.request();
    this.clearErrors();
    this.button.disabled = true;
    this.node.classList.add("pp-running");
    this.status.textContent = "running the simulation\u2026";
    return fetch("/api/run", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(req),
    }).then(function (answer) {
      return answer.json().then(function (body) { return { ok: answer.ok, body: body }; });
    }).then(function (result) {
      if (!result.ok) {
        self.showError(result.body.error || "the run failed");
        self.status.textContent = "";
        return;
      }
      var run = result.body;
      self.command.textContent = run.command;
      if (self.report) self.report.textContent = run.table;
      var url = URL.createObjectURL(new Blob([run.svg], { type: "image/svg+xml" }));
      self.holder.querySelectorAll("img").forEach(function (img) {
        img.src = url;
        img.classList.add("pp-yours");
      });
      var warnings = run.warnings.map(function (w) { return " warning: " + w; }).join("");
      self.status.textContent = "ran in " + (run.wall_ms / 1000).toFixed(1) +
        " s: the report above and the diagram now show this run (trace_hash " +
        run.report.trace_hash.slice(0, 16) + ")." + warnings;
    }).catch(function (e) {
      self.showError("could not reach the server: " + e);
      self.status.textContent = "";
    }).then(function () {
      self.button.disabled = false;
      self.node.classList.remove("pp-running");
    });
  };

  function build(served) {
    var figures = window.PUSHPULL_FIGURES || {};
    var panels = [];
    var seen = [];
    document.querySelectorAll("main img").forEach(function (img) {
      var m = /generated\/(.+)\/diagram\.svg$/.exec(img.getAttribute("src") || "");
      // The book shows each diagram twice (inline, and enlarged on click):
      // one panel per figure.
      var holder = img.closest("p") || img;
      if (m && figures[m[1]] && seen.indexOf(holder) < 0) {
        seen.push(holder);
        panels.push(new Panel(m[1], figures[m[1]], img, served));
      }
    });
    // A shared experiment: ?set=...&seed=...&window=... fills the first panel.
    var params = new URLSearchParams(location.search);
    if (panels.length && (params.has("set") || params.has("seed") || params.has("window"))) {
      var first = panels[0];
      if (params.has("set")) {
        first.rows.textContent = "";
        params.getAll("set").forEach(function (s) { first.addRow(s); });
      }
      if (params.has("seed")) first.seed.value = params.get("seed");
      if (params.has("window")) first.window.value = params.get("window");
      first.node.open = true;
      first.showCommand();
      if (served) first.run();
      // Show the report that the run replaces (below the page's fixed
      // menu bar), the diagram and the panel follow it.
      var top = (first.report || first.node).getBoundingClientRect().top;
      window.scrollTo(0, top + window.scrollY - 80);
    }
  }

  function start() {
    var served = location.protocol === "http:" || location.protocol === "https:";
    if (!served) return build(false);
    fetch("/api/health").then(function (r) { return r.ok ? r.json() : null; })
      .then(function (h) { build(!!(h && h.playground)); })
      .catch(function () { build(false); });
  }

  var script = document.createElement("script");
  script.src = (typeof path_to_root === "string" ? path_to_root : "") + "generated/figures.js";
  script.onload = start;
  script.onerror = start;
  document.head.appendChild(script);
})();

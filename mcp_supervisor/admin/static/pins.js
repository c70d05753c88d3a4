/* The tool pinning page: held tools and prompts with the diff of what changed, approve and reject.
 *
 * Every backend-provided text (names, reasons, diffs) goes in through textContent: a hostile description
 * is exactly what this page shows.
 */

import { BASE, api, setCsrfToken } from "./api.js";
import { $, clear, el, smallButton } from "./dom.js";

function show(message, failed) {
  var banner = $("pin-message");
  banner.textContent = message;
  banner.className = "banner " + (failed ? "danger" : "info");
  banner.hidden = false;
}

function decide(action, entry) {
  api("POST", BASE + "/pins/" + action, { name: entry.name })
    .then(function (data) {
      show(data.message, false);
    })
    .catch(function (err) {
      show(err.message, true);
    })
    .then(load);
}

function diffView(text) {
  var pre = el("pre", { class: "diff", testid: "pin-diff" });
  text.split("\n").forEach(function (line) {
    var kind = line.charAt(0) === "+" ? "added" : line.charAt(0) === "-" ? "removed" : "context";
    pre.appendChild(el("span", { class: "diff-" + kind, text: line + "\n" }));
  });
  return pre;
}

function heldCard(entry) {
  return el(
    "section",
    { class: "panel", testid: "held-" + entry.name },
    el("h4", { text: entry.kind + " " + entry.name + " (backend " + entry.backend + "): " + entry.state }),
    el("p", { class: "hint", text: entry.reason }),
    diffView(entry.diff),
    smallButton("Approve", "approve-" + entry.name, function () {
      decide("approve", entry);
    }, "primary"),
    entry.state === "rejected"
      ? null
      : smallButton("Reject", "reject-" + entry.name, function () {
          decide("reject", entry);
        })
  );
}

function render(data) {
  $("pin-mode").textContent = data.mode;
  var held = $("held");
  var rows = $("pins-rows");
  clear(held);
  clear(rows);
  var waiting = data.entries.filter(function (e) {
    return e.pendingHash && e.state !== "warned" && e.state !== "pinned";
  });
  if (!waiting.length) held.appendChild(el("p", { class: "hint", text: "Nothing is held.", testid: "pins-none" }));
  waiting.forEach(function (entry) {
    held.appendChild(heldCard(entry));
  });
  data.entries.forEach(function (e) {
    rows.appendChild(
      el("tr", { testid: "pin-row-" + e.name },
        el("td", { text: e.kind }), el("td", { text: e.name }), el("td", { text: e.backend }),
        el("td", { text: e.state }), el("td", { class: "wrap", text: e.reason }))
    );
  });
}

function load() {
  return api("GET", BASE + "/pins/list").then(render, function (err) {
    show(err.message, true);
  });
}

api("GET", BASE + "/session")
  .then(function (session) {
    setCsrfToken(session.csrfToken);
    return load();
  })
  .catch(function (err) {
    show(err.message, true);
  });

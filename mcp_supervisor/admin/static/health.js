/* The Health page: a row per backend plus the gateway's own, live uptimes, and the logs panel. The statuses
 * themselves are kept current by sync.js. */

import { api, path } from "./api.js";
import { $, byTestId, clear, el, rowByKey, setText, smallButton } from "./dom.js";
import { badge, dash, fmtCpu, fmtMB, fmtUptime, setBadge } from "./format.js";
import { backendAction, configureToggle, toggleBackend } from "./backends.js";
import { state, uptimeOf } from "./state.js";

const GATEWAY = "__gateway";

export function markHealthUpdated() {
  setText($("health-updated"), "Updated " + new Date().toLocaleTimeString());
}

/* Rows are rebuilt only when the set of backends changed; otherwise their cells are updated in place (a
 * button under the mouse is never replaced by a refresh). */
export function renderHealth() {
  var body = $("health-body");
  var keys = Object.keys(state.statuses).sort();
  var shown = [];
  var rows = body.querySelectorAll("tr[data-key]");
  for (var i = 0; i < rows.length; i++) {
    if (rows[i].getAttribute("data-key") !== GATEWAY) shown.push(rows[i].getAttribute("data-key"));
  }
  var same =
    rowByKey(body, GATEWAY) !== null &&
    shown.join("\n") === keys.join("\n") &&
    (keys.length > 0 || body.querySelector("tr[data-empty]") !== null);
  if (!same) {
    clear(body);
    body.appendChild(gatewayRow());
    keys.forEach(function (key) {
      body.appendChild(healthRow(key));
    });
    if (!keys.length) body.appendChild(el("tr", { "data-empty": "1" }, el("td", { colspan: 13, class: "empty", text: "No backends are configured." })));
  }
  updateGatewayRow();
  keys.forEach(function (key) {
    updateHealthRow(key);
  });
}

const HEALTH_CELLS = ["type", "state", "pid", "uptime", "restarts", "rss", "cpu", "tools", "sandbox", "error", "stderr"];

function cells(prefix, key) {
  return HEALTH_CELLS.map(function (name) {
    if (name === "state") return el("td", {}, badge("", prefix + "state-" + key));
    var cls = ["pid", "uptime", "restarts", "rss", "cpu", "tools"].indexOf(name) >= 0 ? "num" : name === "type" ? "" : "wrap";
    if (name === "pid") cls += " mono";
    if (name === "stderr") cls += " mono";
    return el("td", { class: cls, testid: prefix + name + "-" + key });
  });
}

function gatewayRow() {
  var row = el("tr", { class: "gateway", testid: "health-gateway", "data-key": GATEWAY });
  row.appendChild(el("td", {}, el("strong", { text: "gateway" }), el("div", { class: "hint", text: "this HTTP front end" })));
  cells("gateway-", "row").forEach(function (cell) {
    row.appendChild(cell);
  });
  row.appendChild(el("td", { class: "actions" }, smallButton("Logs", "health-logs-gateway", function () { showLogs("gateway"); })));
  return row;
}

function healthRow(key) {
  var row = el("tr", { testid: "health-row-" + key, "data-key": key });
  row.appendChild(el("td", {}, el("code", { text: key })));
  cells("health-", key).forEach(function (cell) {
    row.appendChild(cell);
  });
  row.appendChild(
    el(
      "td",
      { class: "actions" },
      smallButton("Logs", "health-logs-" + key, function () { showLogs(key); }),
      smallButton("Restart", "health-restart-" + key, function () { backendAction(key, "restart"); }),
      smallButton("Stop", "health-toggle-" + key, function () { toggleBackend(key); })
    )
  );
  return row;
}

function fillHealthCells(row, prefix, key, status, uptime) {
  function cell(name) {
    return byTestId(row, prefix + name + "-" + key);
  }
  setText(cell("type"), dash(status.type));
  setBadge(cell("state"), status.state);
  setText(cell("pid"), dash(status.pid));
  setText(cell("uptime"), fmtUptime(uptime));
  setText(cell("restarts"), status.state === "UNKNOWN" ? "—" : String(status.restarts || 0));
  setText(cell("rss"), status.rss_bytes ? fmtMB(status.rss_bytes) : "—");
  setText(cell("cpu"), status.pid ? fmtCpu(status.cpu_percent || 0) : "—");
  var tools = cell("tools");
  if (prefix === "gateway-") setText(tools, "");
  else setText(tools, status.linked === false ? "not linked" : dash(status.tools));
  fillSandboxCell(cell("sandbox"), status.sandbox);
  var problems = [];
  if (status.last_error) problems.push(status.last_error);
  if (status.last_exit) problems.push(status.last_exit);
  var errorCell = cell("error");
  setText(errorCell, problems.join(" · ") || "—");
  errorCell.classList.toggle("error-text", !!status.last_error);
  setText(cell("stderr"), dash(status.last_stderr));
}

/* The sandbox in one short line: its method and exposure score (0 confined .. 10 not at all, docs/sandbox.md),
 * with a toggle for the account: each feature enforced (✓) or not (✗) and the points each factor adds. The cell
 * is rebuilt only when the report changed, and an open toggle stays open. */
function fillSandboxCell(target, sandbox) {
  if (!target) return;
  var shown = sandbox ? JSON.stringify(sandbox) : "";
  if (target.getAttribute("data-shown") === shown && target.firstChild) return;
  var wasOpen = !!target.querySelector("details[open]");
  target.setAttribute("data-shown", shown);
  clear(target);
  if (!sandbox) {
    setText(target, "—");
    return;
  }
  var score = typeof sandbox.exposure === "number" ? sandbox.exposure : null;
  var level = score === null ? "" : score <= 2 ? "ok" : score <= 5 ? "warn" : "bad";
  var list = el("ul", { class: "sandbox-account" });
  Object.keys(sandbox.enforced || {}).forEach(function (name) {
    list.appendChild(el("li", { class: "enforced", text: "✓ " + name + ": " + sandbox.enforced[name] }));
  });
  Object.keys(sandbox.not_enforced || {}).forEach(function (name) {
    list.appendChild(el("li", { class: "gap", text: "✗ " + name + ": " + sandbox.not_enforced[name] }));
  });
  var factors = sandbox.exposure_factors || {};
  Object.keys(factors).forEach(function (name) {
    if (factors[name] > 0) list.appendChild(el("li", { class: "factor", text: "+" + factors[name].toFixed(2) + " " + name }));
  });
  list.appendChild(el("li", { class: "hint", text: "SANDBOX=" + sandbox.mode }));
  var summary = el(
    "summary",
    {},
    sandbox.method + " ",
    el("span", {
      class: "exposure " + level,
      text: score === null ? "?" : score.toFixed(1),
      title: "exposure score: 0 fully confined, 10 not confined",
      testid: target.getAttribute("data-testid") + "-score",
    })
  );
  var details = el("details", {}, summary, list);
  details.open = wasOpen;
  target.appendChild(details);
}

export function updateGatewayRow() {
  var row = rowByKey($("health-body"), GATEWAY);
  if (!row) return;
  var status = state.gateway ? state.gateway.status : { type: "gateway", state: "UNKNOWN" };
  fillHealthCells(row, "gateway-", "row", status, uptimeOf(state.gateway));
}

export function updateHealthRow(key) {
  var body = $("health-body");
  var row = rowByKey(body, key);
  var item = state.statuses[key];
  if (!item) return;
  if (!row) {
    if (state.page !== "health") return; // rendered in full when the page is shown
    var empty = body.querySelector("tr[data-empty]");
    if (empty) body.removeChild(empty);
    row = healthRow(key);
    // keep the rows sorted by key
    var rows = body.querySelectorAll("tr[data-key]");
    var before = null;
    for (var i = 0; i < rows.length; i++) {
      var other = rows[i].getAttribute("data-key");
      if (other !== GATEWAY && other > key) {
        before = rows[i];
        break;
      }
    }
    body.insertBefore(row, before);
  }
  fillHealthCells(row, "health-", key, item.status, uptimeOf(item));
  configureToggle(byTestId(row, "health-toggle-" + key), item.status);
}

export function removeHealthRow(key) {
  var row = rowByKey($("health-body"), key);
  if (row) row.parentNode.removeChild(row);
}

export function tickUptimes() {
  if (state.page !== "health") return;
  Object.keys(state.statuses).forEach(function (key) {
    var cell = byTestId(document, "health-uptime-" + key);
    if (cell) setText(cell, fmtUptime(uptimeOf(state.statuses[key])));
  });
  updateGatewayRow();
}

// ---------------------------------------------------------------- the logs panel

let logsKey = null;

function showLogs(key) {
  logsKey = key;
  var panel = $("logs-panel");
  panel.hidden = false;
  setText($("logs-title"), "Logs of " + key);
  var pane = $("logs-pane");
  setText(pane, "Loading…");
  api("GET", path("/logs/", key, "?lines=200"))
    .then(function (data) {
      var lines = Array.isArray(data.lines) ? data.lines : [];
      setText(pane, lines.length ? lines.join("\n") : "(no output yet)");
      pane.scrollTop = pane.scrollHeight;
    })
    .catch(function (err) {
      setText(pane, err.message);
    });
  panel.scrollIntoView({ block: "nearest" });
}

export function initHealth() {
  $("logs-close").addEventListener("click", function () {
    $("logs-panel").hidden = true;
  });
  $("logs-refresh").addEventListener("click", function () {
    if (logsKey) showLogs(logsKey);
  });
}

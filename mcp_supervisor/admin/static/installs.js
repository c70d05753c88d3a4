/* The Installs page: runs a stdio server's installCommands and shows their output live, from the event
 * stream's install_* events. */

import { BASE, api, path } from "./api.js";
import { $, clear, el, setText } from "./dom.js";
import { dash } from "./format.js";
import { hasInstallCommands, transportOf } from "./entry.js";
import { serverEntry, state } from "./state.js";
import { toast } from "./notices.js";

const MAX_LINES = 5000;

const installs = {}; // key -> {lines: [{kind, text}], running, exitCode, message, cancelled, finished, failed}
let selected = null; // the key chosen in the select

/* Is the page showing the install of `key`? */
function showing(key) {
  return state.page === "installs" && selected === key;
}

function installRecord(key) {
  if (!installs[key]) installs[key] = { lines: [], running: false, exitCode: null, message: "", cancelled: false, finished: false };
  return installs[key];
}

/* A new install of the key: its log starts afresh. */
function freshLog(record) {
  record.lines = [];
  record.finished = false;
  record.cancelled = false;
  record.exitCode = null;
}

function installableServers() {
  return state.servers.filter(function (server) {
    return hasInstallCommands(server.entry) && transportOf(server.entry) === "stdio";
  });
}

/* `serversLoaded`: the promise of a fresh GET /admin/servers (the select lists the installable servers). */
export function loadInstalls(serversLoaded) {
  return Promise.all([
    serversLoaded,
    api("GET", BASE + "/installs").catch(function () {
      return { installs: [] };
    }),
  ]).then(function (results) {
    var list = Array.isArray(results[1].installs) ? results[1].installs : [];
    list.forEach(function (install) {
      var key = install.serverKey;
      if (!key || installs[key]) return; // what this page saw live is richer (stdout vs stderr)
      var record = installRecord(key);
      record.running = !!install.running;
      record.exitCode = install.exitCode === undefined ? null : install.exitCode;
      record.finished = !install.running;
      record.lines = (install.output || []).map(function (line) {
        return { kind: "stdout", text: typeof line === "string" ? line : JSON.stringify(line) };
      });
      if (record.finished) record.lines.push({ kind: "complete", fail: record.exitCode !== 0, text: "exit code " + record.exitCode });
    });
    renderInstallSelect();
    renderInstall();
  });
}

function renderInstallSelect() {
  var select = $("install-select");
  var servers = installableServers();
  clear(select);
  if (!servers.length) {
    select.appendChild(el("option", { value: "", text: "(no stdio server has installCommands)" }));
    select.disabled = true;
    selected = null;
    return;
  }
  select.disabled = false;
  var keys = servers.map(function (s) {
    return s.key;
  });
  if (keys.indexOf(selected) < 0) selected = keys[0];
  servers.forEach(function (server) {
    select.appendChild(el("option", { value: server.key, text: server.key, selected: server.key === selected }));
  });
  select.value = selected;
}

function lineNode(line) {
  var cls = "line " + line.kind + (line.fail ? " error" : "");
  return el("span", { class: cls, "data-kind": line.kind, testid: "install-line", text: line.text });
}

function renderInstall() {
  var key = selected;
  var output = $("install-output");
  clear(output);
  var server = key ? serverEntry(key) : null;
  var commands = server && hasInstallCommands(server.entry) ? server.entry.installCommands : [];
  setText($("install-commands"), commands.length ? "$ " + commands.join("\n$ ") : "");
  if (!key) {
    renderInstallStatus(null);
    $("install-run").disabled = true;
    $("install-cancel").disabled = true;
    return;
  }
  var record = installs[key];
  if (record) {
    record.lines.forEach(function (line) {
      output.appendChild(lineNode(line));
    });
    output.scrollTop = output.scrollHeight;
  } else {
    output.appendChild(el("span", { class: "line muted", text: "No install has run for this server since the gateway started." }));
  }
  renderInstallStatus(record);
}

function renderInstallStatus(record) {
  var node = $("install-status");
  var run = $("install-run");
  var cancel = $("install-cancel");
  var running = !!(record && record.running);
  run.disabled = running || !selected;
  cancel.disabled = !running;
  node.className = "status-line";
  node.removeAttribute("data-exit-code");
  if (!record) {
    setText(node, "");
    node.setAttribute("data-state", "idle");
    return;
  }
  if (running) {
    node.classList.add("running");
    node.setAttribute("data-state", "running");
    setText(node, "Running… " + (record.message || ""));
    return;
  }
  if (record.exitCode === null || record.exitCode === undefined) {
    node.classList.add(record.failed ? "fail" : "running");
    node.setAttribute("data-state", record.failed ? "failed" : "idle");
    setText(node, record.message || "");
    return;
  }
  var ok = record.exitCode === 0;
  node.classList.add(ok ? "ok" : "fail");
  node.setAttribute("data-state", record.cancelled ? "cancelled" : ok ? "succeeded" : "failed");
  node.setAttribute("data-exit-code", String(record.exitCode));
  var what = record.cancelled ? "Cancelled" : ok ? "Finished" : "Failed";
  setText(node, what + " — exit code " + record.exitCode + (record.message ? " (" + record.message + ")" : ""));
}

function appendInstallLine(key, line) {
  var record = installRecord(key);
  record.lines.push(line);
  if (record.lines.length > MAX_LINES) record.lines.splice(0, record.lines.length - MAX_LINES);
  if (showing(key)) {
    var output = $("install-output");
    var muted = output.querySelector(".muted");
    if (muted) output.removeChild(muted);
    var nearBottom = output.scrollHeight - output.scrollTop - output.clientHeight < 40;
    output.appendChild(lineNode(line));
    if (nearBottom) output.scrollTop = output.scrollHeight;
  }
}

/* An install_* event of the live stream. */
export function onInstallEvent(name, data) {
  var key = data.serverKey;
  if (!key) return;
  var record = installRecord(key);
  if (name !== "install_complete" && !record.running && record.finished) {
    // another install of this key started (maybe from another tab): start a fresh log
    freshLog(record);
    if (showing(key)) renderInstall();
  }
  if (name === "install_info") {
    record.running = true;
    appendInstallLine(key, { kind: "info", text: String(data.message || "") });
  } else if (name === "install_stdout" || name === "install_stderr") {
    record.running = true;
    appendInstallLine(key, { kind: name === "install_stdout" ? "stdout" : "stderr", text: String(data.output || "") });
  } else if (name === "install_error") {
    if (data.code === "cancelled") record.cancelled = true;
    var code = data.code !== undefined && data.code !== null ? " (code " + data.code + ")" : "";
    appendInstallLine(key, { kind: "error", text: String(data.error || "error") + code });
  } else if (name === "install_complete") {
    record.running = false;
    record.finished = true;
    record.exitCode = data.exitCode === undefined ? null : data.exitCode;
    record.message = String(data.message || "");
    appendInstallLine(key, { kind: "complete", fail: record.exitCode !== 0, text: record.message + " — exit code " + dash(data.exitCode) });
  }
  if (showing(key)) renderInstallStatus(record);
}

function runInstall(key) {
  key = key || selected;
  if (!key) return;
  selected = key;
  var record = installRecord(key);
  freshLog(record);
  record.running = true;
  record.failed = false;
  record.message = "";
  if (state.page === "installs") renderInstall();
  api("POST", path("/server/install/", key))
    .then(function (data) {
      if (record.running && !record.finished) {
        record.message = data.message || "";
        if (showing(key)) renderInstallStatus(record);
      }
    })
    .catch(function (err) {
      record.running = false;
      record.failed = true;
      record.message = err.message;
      appendInstallLine(key, { kind: "error", text: err.message });
      if (showing(key)) renderInstallStatus(record);
    });
}

/* The Servers page's Install button: the Installs page, on that server, running. */
export function installFromServers(key) {
  selected = key;
  if (window.location.hash !== "#installs") window.location.hash = "#installs";
  runInstall(key);
}

function cancelInstall() {
  var key = selected;
  if (!key) return;
  $("install-cancel").disabled = true;
  api("POST", path("/server/install/", key, "/cancel"))
    .then(function (data) {
      if (data.message) toast(data.message);
    })
    .catch(function (err) {
      toast(err.message, true);
      renderInstallStatus(installs[key]);
    });
}

export function initInstalls() {
  $("install-select").addEventListener("change", function () {
    selected = $("install-select").value || null;
    renderInstall();
  });
  $("install-run").addEventListener("click", function () {
    runInstall(selected);
  });
  $("install-cancel").addEventListener("click", cancelInstall);
}

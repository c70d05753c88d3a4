/* The Servers page: the table of mcp_server.json entries with their live state, and its row actions. */

import { BASE, api, path } from "./api.js";
import { $, byTestId, clear, el, rowByKey, setText, showError, smallButton } from "./dom.js";
import { badge, dash, setBadge } from "./format.js";
import { hasInstallCommands, isActive, isObject, transportOf } from "./entry.js";
import { liveStatus, serverEntry, setStatus, state } from "./state.js";
import { toast } from "./notices.js";
import { backendAction, configureToggle, toggleBackend } from "./backends.js";
import { removeHealthRow } from "./health.js";
import { installFromServers } from "./installs.js";
import { openServerForm } from "./server-form.js";

export function loadServers() {
  var sentAt = Date.now();
  return api("GET", BASE + "/servers")
    .then(function (data) {
      // A broken mcp_server.json on disk: the table shows the running config, and says why.
      showError(
        $("servers-error"),
        data.configError
          ? "mcp_server.json on disk is not applied (" + data.configError + "). The table shows the running config."
          : ""
      );
      state.servers = Array.isArray(data.servers) ? data.servers : [];
      state.servers.forEach(function (server) {
        if (server.status) setStatus(server.status, sentAt);
      });
      renderServers();
      return state.servers;
    })
    .catch(function (err) {
      showError($("servers-error"), err.message);
      return state.servers;
    });
}

function renderServers() {
  var body = $("servers-body");
  clear(body);
  if (!state.servers.length) {
    body.appendChild(el("tr", {}, el("td", { colspan: 6, class: "empty", text: "No servers yet. Add one." })));
    return;
  }
  state.servers.forEach(function (server) {
    var key = server.key;
    var entry = server.entry;
    var keyCell = el("td", {}, el("code", { text: key }));
    if (isObject(entry) && typeof entry.name === "string" && entry.name && entry.name !== key) {
      keyCell.appendChild(el("div", { class: "hint", text: entry.name }));
    }
    var actions = el(
      "td",
      { class: "actions" },
      smallButton("Edit", "server-edit-" + key, function () { openServerForm(key); }),
      smallButton("Restart", "server-restart-" + key, function () { backendAction(key, "restart"); }),
      smallButton("Stop", "server-toggle-" + key, function () { toggleBackend(key); }),
      hasInstallCommands(entry) ? smallButton("Install", "server-install-" + key, function () { installFromServers(key); }) : null,
      smallButton("Delete", "server-delete-" + key, function () { deleteServer(key); }, "danger")
    );
    var row = el(
      "tr",
      { testid: "server-row-" + key, "data-key": key },
      keyCell,
      el("td", { text: transportOf(entry), testid: "server-type-" + key }),
      el("td", {}, badge("", "server-state-" + key)),
      el("td", { class: "num mono", testid: "server-pid-" + key }),
      el("td", { class: "num", testid: "server-restarts-" + key }),
      actions
    );
    body.appendChild(row);
    updateServerRow(key, row);
  });
}

function stateForServer(key) {
  var status = liveStatus(key);
  var server = serverEntry(key);
  if (status) return status.state;
  if (server && !isActive(server.entry)) return "INACTIVE";
  return "PENDING";
}

/* Brings a row of the table up to date with the backend's live status. */
export function updateServerRow(key, row) {
  row = row || rowByKey($("servers-body"), key);
  if (!row) return;
  var status = liveStatus(key);
  setBadge(byTestId(row, "server-state-" + key), stateForServer(key));
  setText(byTestId(row, "server-pid-" + key), status ? dash(status.pid) : "—");
  setText(byTestId(row, "server-restarts-" + key), status ? String(status.restarts || 0) : "—");
  configureToggle(byTestId(row, "server-toggle-" + key), status);
  var restart = byTestId(row, "server-restart-" + key);
  if (restart) restart.disabled = !status;
}

function deleteServer(key) {
  if (!window.confirm('Delete server "' + key + '"? Its worker stops and the entry leaves mcp_server.json.')) return;
  api("DELETE", path("/servers/", key))
    .then(function (data) {
      toast(data.message || 'Server "' + key + '" deleted.');
      delete state.statuses[key];
      removeHealthRow(key);
      return loadServers();
    })
    .catch(function (err) {
      toast(err.message, true);
    });
}

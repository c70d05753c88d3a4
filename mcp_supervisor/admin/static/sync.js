/* Keeps the live backend statuses current, from GET /admin/health and the event stream's backend events, and
 * updates every view that shows them (the Health page, the Servers table, the configuration-error banner). */

import { $, showError } from "./dom.js";
import { BASE, api } from "./api.js";
import { showConfigError } from "./notices.js";
import { setStatus, state } from "./state.js";
import { markHealthUpdated, removeHealthRow, renderHealth, updateGatewayRow, updateHealthRow } from "./health.js";
import { updateServerRow } from "./servers.js";

function applyHealth(data, sentAt) {
  if (data.gateway) state.gateway = { status: data.gateway, at: Date.now() };
  var seen = {};
  (data.backends || []).forEach(function (status) {
    seen[status.key] = true;
    setStatus(status, sentAt);
  });
  Object.keys(state.statuses).forEach(function (key) {
    if (!seen[key] && !(sentAt && state.statuses[key].at >= sentAt)) delete state.statuses[key];
  });
  showConfigError(data.configError || null);
  renderHealth();
  state.servers.forEach(function (server) {
    updateServerRow(server.key);
  });
  markHealthUpdated();
}

function fetchHealth() {
  var sentAt = Date.now();
  return api("GET", BASE + "/health").then(function (data) {
    applyHealth(data, sentAt);
  });
}

/* The Health page's loader: a failure is shown on the page. */
export function loadHealth() {
  return fetchHealth().then(
    function () {
      showError($("health-error"), "");
    },
    function (err) {
      showError($("health-error"), err.message);
    }
  );
}

/* A refresh in the background (after a change, a reconnect, now and then): a failure is not shown. */
export function refreshHealthQuietly() {
  return fetchHealth().catch(function () {
    return null;
  });
}

/* A "backend" event of the live stream: `kind` is the supervisor event (spawned, ready, ..., removed). */
export function onBackendEvent(kind, status) {
  if (!status || !status.key) return;
  var key = status.key;
  if (state.gateway && state.gateway.status.key === key && !state.statuses[key]) {
    state.gateway = { status: status, at: Date.now() };
    updateGatewayRow();
    return;
  }
  if (kind === "removed") {
    delete state.statuses[key];
    state.removedAt[key] = Date.now();
    removeHealthRow(key);
  } else {
    setStatus(status);
    updateHealthRow(key);
  }
  updateServerRow(key);
  markHealthUpdated();
}

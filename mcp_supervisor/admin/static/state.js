/* The state the pages share: the current page, the configured servers and the live backend statuses. */

export const state = {
  page: null,
  servers: [], // [{key, entry, status}] from GET /admin/servers
  statuses: {}, // key -> {status, at}: the live health, from /admin/health and the event stream
  removedAt: {}, // key -> when a "removed" event came
  gateway: null, // {status, at}: the gateway's own health row
};

export function serverEntry(key) {
  for (var i = 0; i < state.servers.length; i++) if (state.servers[i].key === key) return state.servers[i];
  return null;
}

export function liveStatus(key) {
  var item = state.statuses[key];
  return item ? item.status : null;
}

/* `sentAt`: when the request that brought this status was sent. A live event received since then is newer
 * than the answer, which must not overwrite it. */
export function setStatus(status, sentAt) {
  if (!status || !status.key) return;
  var known = state.statuses[status.key];
  if (sentAt && known && known.at >= sentAt) return;
  if (sentAt && state.removedAt[status.key] >= sentAt) return;
  state.statuses[status.key] = { status: status, at: Date.now() };
}

/* Seconds up now, from a {status, at} item: the status's uptime plus the time since it came. */
export function uptimeOf(item) {
  if (!item) return null;
  var status = item.status;
  if (status.state !== "RUNNING") return null;
  if (typeof status.uptime_s === "number") return status.uptime_s + (Date.now() - item.at) / 1000;
  if (typeof status.started_at === "number") return Date.now() / 1000 - status.started_at;
  return null;
}

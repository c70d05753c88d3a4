/* How numbers and backend states are shown: uptimes, sizes, dashes for "nothing", state badges. */

import { el, setText } from "./dom.js";

export function fmtUptime(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds) || seconds < 0) return "—";
  var s = Math.floor(seconds);
  var d = Math.floor(s / 86400);
  var h = Math.floor((s % 86400) / 3600);
  var m = Math.floor((s % 3600) / 60);
  var sec = s % 60;
  function two(n) {
    return (n < 10 ? "0" : "") + n;
  }
  if (d) return d + "d " + two(h) + "h";
  if (h) return h + "h " + two(m) + "m";
  if (m) return m + "m " + two(sec) + "s";
  return sec + "s";
}

export function fmtMB(bytes) {
  if (bytes === null || bytes === undefined || !isFinite(bytes)) return "—";
  return (bytes / 1048576).toFixed(1);
}

export function fmtCpu(value) {
  if (value === null || value === undefined || !isFinite(value)) return "—";
  return Number(value).toFixed(1);
}

export function dash(value) {
  return value === null || value === undefined || value === "" ? "—" : String(value);
}

const BADGE_STATES = ["running", "starting", "backoff", "stopping", "fatal", "stopped", "inactive", "exited"];

function badgeClass(stateName) {
  var s = String(stateName || "unknown").toLowerCase();
  return BADGE_STATES.indexOf(s) >= 0 ? s : "unknown";
}

export function badge(stateName, testid) {
  return el("span", { class: "badge " + badgeClass(stateName), text: stateName || "UNKNOWN", testid: testid });
}

export function setBadge(node, stateName) {
  setText(node, stateName || "UNKNOWN");
  node.className = "badge " + badgeClass(stateName);
  node.setAttribute("data-state", stateName || "UNKNOWN");
}

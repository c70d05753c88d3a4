/* Messages to the user: the toast, the reload message and the configuration-error banner. */

import { $, setText } from "./dom.js";

let toastTimer = null;

export function toast(message, isError) {
  var node = $("toast");
  if (!node || !message) return;
  setText(node, message);
  node.className = "toast" + (isError ? " error" : "");
  node.hidden = false;
  if (toastTimer) clearTimeout(toastTimer);
  toastTimer = setTimeout(function () {
    node.hidden = true;
  }, isError ? 9000 : 5000);
}

export function showReloadMessage(message, isError) {
  var node = $("reload-message");
  setText(node, message);
  node.className = "banner " + (isError ? "danger" : "info");
  node.hidden = !message;
}

/* The configuration's error (null: none), shown at the top of every page and on the Health page. */
export function showConfigError(message) {
  var banner = $("config-error-banner");
  setText(banner, message ? "Configuration error — the last change was not applied: " + message : "");
  banner.hidden = !message;
  var callout = $("health-config-error");
  setText(callout, message ? "Configuration error: " + message : "");
  callout.hidden = !message;
}

/* Start-up failed: the banner says why. */
export function showApiDown(message) {
  var banner = $("config-error-banner");
  setText(banner, "The admin API did not answer: " + message);
  banner.hidden = false;
}

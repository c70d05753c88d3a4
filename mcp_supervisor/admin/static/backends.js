/* The Restart and Start/Stop buttons that the Servers and Health pages both show for a backend. */

import { api, path } from "./api.js";
import { setText } from "./dom.js";
import { toast } from "./notices.js";
import { liveStatus } from "./state.js";

function isStopped(status) {
  return !!status && (status.state === "STOPPED" || status.state === "FATAL");
}

export function backendAction(key, action) {
  return api("POST", path("/servers/", key, "/" + action))
    .then(function (data) {
      toast(data.message || action + " " + key + ": done.");
    })
    .catch(function (err) {
      toast(err.message, true);
    });
}

export function toggleBackend(key) {
  return backendAction(key, isStopped(liveStatus(key)) ? "start" : "stop");
}

/* The toggle says Start for a stopped backend and Stop otherwise; it is off while there is no status yet. */
export function configureToggle(button, status) {
  if (!button) return;
  var stopped = isStopped(status);
  setText(button, stopped ? "Start" : "Stop");
  button.setAttribute("data-action", stopped ? "start" : "stop");
  button.disabled = !status || status.state === "STOPPING";
}

/* The live event stream (GET /admin/sse/updates): one EventSource, reconnected when it breaks, its state on
 * <body data-sse> and the "disconnected" banner. What each event does is up to the handlers. */

import { BASE, api, parseJson } from "./api.js";
import { $ } from "./dom.js";

const INSTALL_EVENTS = ["install_info", "install_stdout", "install_stderr", "install_error", "install_complete"];

let eventSource = null;
let everConnected = false;
let retryTimer = null;
let handlers = null;

function showConnection(sse) {
  document.body.setAttribute("data-sse", sse);
  $("sse-banner").hidden = sse === "connected";
}

/* handlers: {reconnected(), backend(kind, status), config(data), install(name, data)} */
export function connectEvents(eventHandlers) {
  handlers = eventHandlers;
  connect();
}

function listen(source, name, handle) {
  source.addEventListener(name, function (event) {
    var data = parseJson(event.data);
    if (data) handle(data);
  });
}

function connect() {
  if (eventSource) eventSource.close();
  var source = new EventSource(BASE + "/sse/updates");
  eventSource = source;
  source.addEventListener("connected", function () {
    showConnection("connected");
    if (everConnected) handlers.reconnected(); // events may have been missed meanwhile
    everConnected = true;
  });
  listen(source, "backend", function (data) {
    handlers.backend(data.event, data.status);
  });
  listen(source, "config", handlers.config);
  INSTALL_EVENTS.forEach(function (name) {
    listen(source, name, function (data) {
      handlers.install(name, data);
    });
  });
  source.onerror = function () {
    showConnection("error");
    // A 401 closes an EventSource for good: find out whether the session is gone (api() redirects then).
    api("GET", BASE + "/session")
      .then(function () {
        if (source.readyState === EventSource.CLOSED && !retryTimer) {
          retryTimer = setTimeout(function () {
            retryTimer = null;
            connect();
          }, 3000);
        }
      })
      .catch(function () {
        return null;
      });
  };
}

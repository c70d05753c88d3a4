/* mcp-supervisor admin UI: plain JavaScript modules, no build step, no external resources.
 *
 * The entry point of the app page (index.html): the session, the header, routing between the pages and the
 * live event stream's wiring. The API contract is docs/admin.md.
 */

import { BASE, api, goLogin, setCsrfToken } from "./api.js";
import { $, setText } from "./dom.js";
import { state } from "./state.js";
import { showApiDown, showConfigError, showReloadMessage } from "./notices.js";
import { connectEvents } from "./events.js";
import { loadHealth, onBackendEvent, refreshHealthQuietly } from "./sync.js";
import { initHealth, tickUptimes } from "./health.js";
import { loadServers } from "./servers.js";
import { initServerForm } from "./server-form.js";
import { initTools, loadTools } from "./tools.js";
import { initClients, loadClients } from "./clients.js";
import { initInstalls, loadInstalls, onInstallEvent } from "./installs.js";
import { initTerminal, terminalShown } from "./terminal.js";

const PAGES = ["servers", "tools", "clients", "health", "installs", "terminal"];

let session = null; // GET /admin/session

// ================================================================ header

function reloadConfig() {
  var button = $("reload-config");
  button.disabled = true;
  api("POST", BASE + "/server/reload")
    .then(function (data) {
      showReloadMessage(data.message || "Configuration reloaded.", data.success === false);
    })
    .catch(function (err) {
      showReloadMessage(err.message, true);
    })
    .then(function () {
      button.disabled = false;
      refreshHealthQuietly();
      refreshCurrentPage();
    });
}

function logout() {
  api("POST", BASE + "/logout")
    .catch(function () {
      return null;
    })
    .then(function () {
      goLogin();
    });
}

// ================================================================ routing

function currentPageFromHash() {
  var name = (window.location.hash || "").replace(/^#\/?/, "").split(/[?/]/)[0];
  if (PAGES.indexOf(name) < 0) return "servers";
  if (name === "terminal" && !(session && session.webTerminal)) return "servers";
  return name;
}

function route() {
  var page = currentPageFromHash();
  state.page = page;
  PAGES.forEach(function (name) {
    var section = $("page-" + name);
    if (section) section.hidden = name !== page;
  });
  var tabs = document.querySelectorAll("#tabs a");
  for (var i = 0; i < tabs.length; i++) {
    var active = tabs[i].getAttribute("data-tab") === page;
    tabs[i].classList.toggle("active", active);
    if (active) tabs[i].setAttribute("aria-current", "page");
    else tabs[i].removeAttribute("aria-current");
  }
  document.title = page.charAt(0).toUpperCase() + page.slice(1) + " · mcp-supervisor admin";
  refreshCurrentPage();
}

function refreshCurrentPage() {
  if (state.page === "servers") loadServers();
  else if (state.page === "tools") loadTools();
  else if (state.page === "clients") loadClients();
  else if (state.page === "health") loadHealth();
  else if (state.page === "installs") loadInstalls(loadServers());
  else if (state.page === "terminal") terminalShown();
}

// ================================================================ start-up

function initApp() {
  api("GET", BASE + "/session")
    .then(function (data) {
      session = data;
      setCsrfToken(data.csrfToken);
      setText($("username"), data.username || "admin");
      var terminalTab = document.querySelector('#tabs a[data-tab="terminal"]');
      terminalTab.hidden = !data.webTerminal;
      $("reload-config").addEventListener("click", reloadConfig);
      $("logout").addEventListener("click", logout);
      $("reload-message").addEventListener("click", function () {
        $("reload-message").hidden = true;
      });
      initHealth();
      initTools();
      initClients();
      initServerForm(function () {
        refreshHealthQuietly();
        return loadServers();
      });
      initInstalls();
      if (data.webTerminal) initTerminal();
      connectEvents({
        reconnected: function () {
          refreshHealthQuietly();
          refreshCurrentPage();
        },
        backend: onBackendEvent,
        config: function (data) {
          showConfigError(data.configError || null);
        },
        install: onInstallEvent,
      });
      refreshHealthQuietly();
      window.addEventListener("hashchange", route);
      route();
      setInterval(tickUptimes, 1000);
      // The event stream carries backend states but not the config error: look at the whole picture now and then.
      setInterval(function () {
        if (!document.hidden) refreshHealthQuietly();
      }, 10000);
      document.body.setAttribute("data-ready", "1");
    })
    .catch(function (err) {
      if (err.status !== 401) showApiDown(err.message);
    });
}

initApp(); // a module runs once the document is parsed

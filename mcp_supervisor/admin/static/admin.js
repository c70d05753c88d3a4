/* mcp-supervisor admin UI: plain JavaScript, no build step, no external resources.
 *
 * The API contract is docs/admin.md. Every piece of server-provided text goes into the page through
 * textContent or attribute setters, never innerHTML. Non-GET requests carry X-CSRF-Token; any 401 sends the
 * browser to the login page.
 */
(function () {
  "use strict";

  var BASE = "/admin";

  // ================================================================ small helpers

  function $(id) {
    return document.getElementById(id);
  }

  var PROPS = { checked: 1, value: 1, disabled: 1, hidden: 1, title: 1, type: 1, placeholder: 1, rows: 1, selected: 1 };

  /* el("button", {class: "small", text: "Go", testid: "x", onclick: fn}, child, ...) */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    var key;
    attrs = attrs || {};
    for (key in attrs) {
      if (!Object.prototype.hasOwnProperty.call(attrs, key)) continue;
      var value = attrs[key];
      if (value === undefined || value === null) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else if (key === "testid") node.setAttribute("data-testid", value);
      else if (key.slice(0, 2) === "on" && typeof value === "function") node.addEventListener(key.slice(2), value);
      else if (PROPS[key]) node[key] = value;
      else node.setAttribute(key, String(value));
    }
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function setText(node, text) {
    var value = text === null || text === undefined ? "" : String(text);
    if (node.textContent !== value) node.textContent = value;
  }

  function showError(node, message) {
    if (!node) return;
    setText(node, message || "");
    node.hidden = !message;
  }

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function ApiError(status, message, data) {
    this.status = status;
    this.message = message;
    this.data = data;
  }
  ApiError.prototype = Object.create(Error.prototype);
  ApiError.prototype.name = "ApiError";

  var csrfToken = null;
  var leaving = false;

  function goLogin() {
    if (leaving) return;
    leaving = true;
    window.location.assign(BASE + "/login");
  }

  /* fetch + JSON, with the CSRF header on every non-GET request; a 401 means "log in again". */
  function api(method, path, body) {
    var headers = { Accept: "application/json" };
    var init = { method: method, headers: headers, credentials: "same-origin", cache: "no-store" };
    if (method !== "GET" && method !== "HEAD" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(
      function (response) {
        return response.text().then(function (text) {
          var data = null;
          if (text) {
            try {
              data = JSON.parse(text);
            } catch (e) {
              data = null;
            }
          }
          if (response.status === 401) {
            goLogin();
            throw new ApiError(401, (data && data.error) || "Not logged in.", data);
          }
          if (!response.ok) {
            // errors are {error}; a refused supervisor command answers {success: false, message}
            var message = (data && (data.error || data.message)) || "The gateway answered HTTP " + response.status + ".";
            var retry = response.headers.get("Retry-After");
            if (response.status === 429 && retry) message += " Try again in " + retry + " s.";
            throw new ApiError(response.status, message, data);
          }
          return data || {};
        });
      },
      function (err) {
        throw new ApiError(0, "The gateway did not answer (" + (err && err.message ? err.message : err) + ").");
      }
    );
  }

  function path(prefix, key, suffix) {
    return BASE + prefix + encodeURIComponent(key) + (suffix || "");
  }

  var toastTimer = null;

  function toast(message, isError) {
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

  function fmtUptime(seconds) {
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

  function fmtMB(bytes) {
    if (bytes === null || bytes === undefined || !isFinite(bytes)) return "—";
    return (bytes / 1048576).toFixed(1);
  }

  function fmtCpu(value) {
    if (value === null || value === undefined || !isFinite(value)) return "—";
    return Number(value).toFixed(1);
  }

  function dash(value) {
    return value === null || value === undefined || value === "" ? "—" : String(value);
  }

  function badgeClass(stateName) {
    var s = String(stateName || "unknown").toLowerCase();
    if (s === "exited") return "exited";
    if (["running", "starting", "backoff", "stopping", "fatal", "stopped", "inactive"].indexOf(s) >= 0) return s;
    return "unknown";
  }

  function badge(stateName, testid) {
    return el("span", { class: "badge " + badgeClass(stateName), text: stateName || "UNKNOWN", testid: testid });
  }

  function setBadge(node, stateName) {
    setText(node, stateName || "UNKNOWN");
    node.className = "badge " + badgeClass(stateName);
    node.setAttribute("data-state", stateName || "UNKNOWN");
  }

  // ================================================================ login page

  function initLogin() {
    var form = $("login-form");
    var errorNode = $("login-error");
    var button = $("login-submit");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      showError(errorNode, "");
      button.disabled = true;
      var body = { username: $("login-username").value, password: $("login-password").value };
      fetch(BASE + "/login", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      })
        .then(function (response) {
          return response.text().then(function (text) {
            var data = null;
            try {
              data = text ? JSON.parse(text) : null;
            } catch (e) {
              data = null;
            }
            if (response.ok && data && data.success) {
              window.location.assign(BASE + "/");
              return;
            }
            var message = (data && data.error) || "Sign-in failed (HTTP " + response.status + ").";
            var retry = response.headers.get("Retry-After");
            if (response.status === 429 && retry) message += " Try again in " + retry + " s.";
            showError(errorNode, message);
            $("login-password").select();
          });
        })
        .catch(function (err) {
          showError(errorNode, "The gateway did not answer (" + (err && err.message) + ").");
        })
        .then(function () {
          button.disabled = false;
        });
    });
  }

  // ================================================================ application state

  var session = null;
  var state = {
    page: null,
    servers: [], // [{key, entry, status}] from GET /admin/servers
    statuses: {}, // key -> {status, at}: the live health, from /admin/health and the event stream
    removedAt: {}, // key -> when a "removed" event came
    gateway: null,
    gatewayAt: 0,
    configError: null,
    installs: {}, // key -> {lines: [{kind, text}], running, exitCode, message, cancelled}
    installSelected: null,
    tools: [],
  };
  var PAGES = ["servers", "tools", "health", "installs", "terminal"];

  function transportOf(entry) {
    if (!isObject(entry)) return "stdio";
    var raw = entry.type !== undefined ? entry.type : entry.transport;
    if (typeof raw === "string" && raw) return raw;
    if (entry.command) return "stdio";
    if (typeof entry.url === "string" && entry.url) return /\/sse\/?$/.test(entry.url) ? "sse" : "http";
    return "stdio";
  }

  function isActive(entry) {
    if (!isObject(entry)) return true;
    var a = entry.active;
    return !(a === false || (typeof a === "string" && a.trim().toLowerCase() === "false"));
  }

  function liveStatus(key) {
    var item = state.statuses[key];
    return item ? item.status : null;
  }

  function uptimeOf(item) {
    if (!item) return null;
    var status = item.status;
    if (status.state !== "RUNNING") return null;
    if (typeof status.uptime_s === "number") return status.uptime_s + (Date.now() - item.at) / 1000;
    if (typeof status.started_at === "number") return Date.now() / 1000 - status.started_at;
    return null;
  }

  /* `sentAt`: when the request that brought this status was sent. A live event received since then is newer
   * than the answer, which must not overwrite it. */
  function setStatus(status, sentAt) {
    if (!status || !status.key) return;
    var known = state.statuses[status.key];
    if (sentAt && known && known.at >= sentAt) return;
    if (sentAt && state.removedAt[status.key] >= sentAt) return;
    state.statuses[status.key] = { status: status, at: Date.now() };
  }

  // ================================================================ header, banners, routing

  function renderConfigError() {
    var message = state.configError;
    var banner = $("config-error-banner");
    setText(banner, message ? "Configuration error — the last change was not applied: " + message : "");
    banner.hidden = !message;
    var callout = $("health-config-error");
    setText(callout, message ? "Configuration error: " + message : "");
    callout.hidden = !message;
  }

  function showReloadMessage(message, isError) {
    var node = $("reload-message");
    setText(node, message);
    node.className = "banner " + (isError ? "danger" : "info");
    node.hidden = !message;
  }

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
    else if (state.page === "health") loadHealth();
    else if (state.page === "installs") loadInstalls();
    else if (state.page === "terminal") terminalShown();
  }

  function refreshHealthQuietly() {
    var sentAt = Date.now();
    return api("GET", BASE + "/health")
      .then(function (data) {
        applyHealth(data, sentAt);
      })
      .catch(function () {
        return null;
      });
  }

  // ================================================================ live events

  var eventSource = null;
  var everConnected = false;
  var sseRetryTimer = null;

  function connectEvents() {
    if (eventSource) eventSource.close();
    var source = new EventSource(BASE + "/sse/updates");
    eventSource = source;
    source.addEventListener("connected", function () {
      document.body.setAttribute("data-sse", "connected");
      $("sse-banner").hidden = true;
      if (everConnected) {
        // a reconnect: events may have been missed meanwhile
        refreshHealthQuietly();
        refreshCurrentPage();
      }
      everConnected = true;
    });
    source.addEventListener("backend", function (event) {
      var data = parseEvent(event);
      if (data) onBackendEvent(data.event, data.status);
    });
    source.addEventListener("config", function (event) {
      var data = parseEvent(event);
      if (!data) return;
      state.configError = data.configError || null;
      renderConfigError();
    });
    ["install_info", "install_stdout", "install_stderr", "install_error", "install_complete"].forEach(function (name) {
      source.addEventListener(name, function (event) {
        var data = parseEvent(event);
        if (data) onInstallEvent(name, data);
      });
    });
    source.onerror = function () {
      document.body.setAttribute("data-sse", "error");
      $("sse-banner").hidden = false;
      // A 401 closes an EventSource for good: find out whether the session is gone (api() redirects then).
      api("GET", BASE + "/session")
        .then(function () {
          if (source.readyState === EventSource.CLOSED && !sseRetryTimer) {
            sseRetryTimer = setTimeout(function () {
              sseRetryTimer = null;
              connectEvents();
            }, 3000);
          }
        })
        .catch(function () {
          return null;
        });
    };
  }

  function parseEvent(event) {
    try {
      return JSON.parse(event.data);
    } catch (e) {
      return null;
    }
  }

  function onBackendEvent(kind, status) {
    if (!status || !status.key) return;
    var key = status.key;
    if (state.gateway && state.gateway.key === key && !state.statuses[key]) {
      state.gateway = status;
      state.gatewayAt = Date.now();
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
    setText($("health-updated"), "Updated " + new Date().toLocaleTimeString());
  }

  // ================================================================ Servers page

  function loadServers() {
    var sentAt = Date.now();
    return api("GET", BASE + "/servers")
      .then(function (data) {
        showError($("servers-error"), "");
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

  function serverEntry(key) {
    for (var i = 0; i < state.servers.length; i++) if (state.servers[i].key === key) return state.servers[i];
    return null;
  }

  function hasInstallCommands(entry) {
    return isObject(entry) && Array.isArray(entry.installCommands) && entry.installCommands.length > 0;
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
        el("button", { type: "button", class: "small", text: "Edit", testid: "server-edit-" + key, onclick: function () { openServerForm(key); } }),
        el("button", { type: "button", class: "small", text: "Restart", testid: "server-restart-" + key, onclick: function () { backendAction(key, "restart"); } }),
        el("button", { type: "button", class: "small", text: "Stop", testid: "server-toggle-" + key, onclick: function () { toggleBackend(key); } }),
        hasInstallCommands(entry)
          ? el("button", { type: "button", class: "small", text: "Install", testid: "server-install-" + key, onclick: function () { installFromServers(key); } })
          : null,
        el("button", { type: "button", class: "small danger", text: "Delete", testid: "server-delete-" + key, onclick: function () { deleteServer(key); } })
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

  function updateServerRow(key, row) {
    row = row || document.querySelector('#servers-body tr[data-key="' + cssEscape(key) + '"]');
    if (!row) return;
    var status = liveStatus(key);
    var stateName = stateForServer(key);
    setBadge(row.querySelector('[data-testid="server-state-' + cssEscape(key) + '"]'), stateName);
    setText(row.querySelector('[data-testid="server-pid-' + cssEscape(key) + '"]'), status ? dash(status.pid) : "—");
    setText(row.querySelector('[data-testid="server-restarts-' + cssEscape(key) + '"]'), status ? String(status.restarts || 0) : "—");
    var toggle = row.querySelector('[data-testid="server-toggle-' + cssEscape(key) + '"]');
    var restart = row.querySelector('[data-testid="server-restart-' + cssEscape(key) + '"]');
    configureToggle(toggle, status);
    if (restart) restart.disabled = !status;
  }

  function configureToggle(button, status) {
    if (!button) return;
    var stopped = status && (status.state === "STOPPED" || status.state === "FATAL");
    setText(button, stopped ? "Start" : "Stop");
    button.setAttribute("data-action", stopped ? "start" : "stop");
    button.disabled = !status || status.state === "STOPPING";
  }

  function cssEscape(value) {
    if (window.CSS && CSS.escape) return CSS.escape(value);
    return String(value).replace(/["\\]/g, "\\$&");
  }

  function backendAction(key, action) {
    return api("POST", path("/servers/", key, "/" + action))
      .then(function (data) {
        toast(data.message || action + " " + key + ": done.");
      })
      .catch(function (err) {
        toast(err.message, true);
      });
  }

  function toggleBackend(key, button) {
    var status = liveStatus(key);
    var stopped = status && (status.state === "STOPPED" || status.state === "FATAL");
    return backendAction(key, stopped ? "start" : "stop");
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

  function installFromServers(key) {
    state.installSelected = key;
    if (window.location.hash !== "#installs") window.location.hash = "#installs";
    runInstall(key);
  }

  // ---------------------------------------------------------------- the server form

  /* The form edits a copy of the raw entry (shown as the advanced JSON): a field is written back only when its
   * text differs from the rendering of the entry's current value, so untouched values keep their exact form and
   * fields the form does not know survive. */
  var FORM_FIELDS = [
    { name: "name", kind: "text" },
    { name: "command", kind: "text", group: "stdio" },
    { name: "args", kind: "lines", group: "stdio" },
    { name: "env", kind: "map", sep: "=", group: "stdio", label: "Environment" },
    { name: "cwd", kind: "text", group: "stdio" },
    { name: "installDirectory", kind: "text", group: "stdio" },
    { name: "installCommands", kind: "lines", group: "stdio" },
    { name: "url", kind: "text", group: "remote" },
    { name: "apiKey", kind: "text", group: "remote" },
    { name: "bearerToken", kind: "text", group: "remote" },
    { name: "headers", kind: "map", sep: ":", group: "remote", label: "Headers" },
  ];

  var formMode = null; // "add" | "edit"
  var formKey = null;

  function renderField(field, value) {
    if (value === undefined || value === null) return "";
    if (field.kind === "lines") return Array.isArray(value) ? value.map(String).join("\n") : String(value);
    if (field.kind === "map") {
      if (!isObject(value)) return "";
      return Object.keys(value)
        .map(function (k) {
          return k + (field.sep === "=" ? "=" : ": ") + (value[k] === null ? "" : String(value[k]));
        })
        .join("\n");
    }
    return typeof value === "string" ? value : String(value);
  }

  function parseField(field, text) {
    if (field.kind === "text") {
      var trimmed = text.trim();
      return trimmed ? trimmed : undefined;
    }
    var lines = text.split(/\r?\n/);
    if (field.kind === "lines") {
      var items = lines
        .map(function (line) {
          return line.trim();
        })
        .filter(function (line) {
          return line !== "";
        });
      return items.length ? items : undefined;
    }
    var result = {};
    var count = 0;
    lines.forEach(function (line, index) {
      if (!line.trim()) return;
      var at = line.indexOf(field.sep);
      var name = at > 0 ? line.slice(0, at).trim() : "";
      if (!name) {
        var shape = field.sep === "=" ? "KEY=VALUE" : "Name: value";
        throw new Error(field.label + " line " + (index + 1) + " must look like " + shape + ": " + line);
      }
      var value = line.slice(at + 1);
      result[name] = field.sep === ":" ? value.trim() : value;
      count++;
    });
    return count ? result : undefined;
  }

  function formInput(name) {
    return $("sf-" + name);
  }

  function fillForm(entry) {
    FORM_FIELDS.forEach(function (field) {
      formInput(field.name).value = renderField(field, entry[field.name]);
    });
    $("sf-type").value = ["stdio", "sse", "http"].indexOf(transportOf(entry)) >= 0 ? transportOf(entry) : "stdio";
    $("sf-active").checked = isActive(entry);
    var noPrefix = entry.namePrefix === "";
    $("sf-noPrefix").checked = noPrefix;
    $("sf-namePrefix").value = typeof entry.namePrefix === "string" ? entry.namePrefix : "";
    $("sf-namePrefix").disabled = noPrefix;
    showGroups();
  }

  /* Apply the form's edits to `entry` (mutated). Throws an Error with a sentence on a malformed field. */
  function applyForm(entry) {
    FORM_FIELDS.forEach(function (field) {
      var text = formInput(field.name).value;
      if (text === renderField(field, entry[field.name])) return;
      var value = parseField(field, text);
      if (value === undefined) delete entry[field.name];
      else entry[field.name] = value;
    });
    var type = $("sf-type").value;
    if (type !== transportOf(entry)) {
      entry.type = type;
      if (entry.transport !== undefined) delete entry.transport;
    }
    var active = $("sf-active").checked;
    if (active !== isActive(entry)) entry.active = active;
    if ($("sf-noPrefix").checked) {
      entry.namePrefix = "";
    } else {
      var prefixText = $("sf-namePrefix").value;
      var current = typeof entry.namePrefix === "string" ? entry.namePrefix : "";
      if (prefixText !== current || entry.namePrefix === "") {
        var prefix = prefixText.trim();
        if (prefix) entry.namePrefix = prefix;
        else delete entry.namePrefix;
      }
    }
    return entry;
  }

  function showGroups() {
    var type = $("sf-type").value;
    $("sf-stdio-group").hidden = type !== "stdio";
    $("sf-remote-group").hidden = type === "stdio";
  }

  function readJsonEntry() {
    var text = $("sf-json").value.trim();
    if (!text) return {};
    var value;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new Error("The advanced JSON is not valid JSON: " + e.message);
    }
    if (!isObject(value)) throw new Error("The advanced JSON must be a JSON object (the server's entry).");
    return value;
  }

  function syncJsonFromForm() {
    try {
      var entry = applyForm(readJsonEntry());
      $("sf-json").value = JSON.stringify(entry, null, 2);
      showError($("server-form-error"), "");
    } catch (err) {
      showError($("server-form-error"), err.message);
    }
  }

  function syncFormFromJson() {
    try {
      fillForm(readJsonEntry());
      showError($("server-form-error"), "");
    } catch (err) {
      showError($("server-form-error"), err.message);
    }
  }

  function onTypeChanged() {
    // Switching transports drops the fields of the other kind (they would only confuse the entry).
    var type = $("sf-type").value;
    FORM_FIELDS.forEach(function (field) {
      if (!field.group) return;
      var keep = type === "stdio" ? field.group === "stdio" : field.group === "remote";
      if (!keep) formInput(field.name).value = "";
    });
    showGroups();
    syncJsonFromForm();
  }

  function openServerForm(key) {
    var form = $("server-form");
    showError($("server-form-error"), "");
    var entry;
    if (key === undefined || key === null) {
      formMode = "add";
      formKey = null;
      entry = { type: "stdio" };
      setText($("server-form-title"), "Add server");
      $("sf-key").value = "";
      $("sf-key").disabled = false;
    } else {
      var server = serverEntry(key);
      if (!server) return;
      formMode = "edit";
      formKey = key;
      entry = isObject(server.entry) ? JSON.parse(JSON.stringify(server.entry)) : {};
      setText($("server-form-title"), 'Edit server "' + key + '"');
      $("sf-key").value = key;
      $("sf-key").disabled = true;
    }
    $("sf-json").value = JSON.stringify(entry, null, 2);
    fillForm(entry);
    form.hidden = false;
    form.scrollIntoView({ block: "start" });
    (formMode === "add" ? $("sf-key") : $("sf-command")).focus();
  }

  function closeServerForm() {
    $("server-form").hidden = true;
    formMode = null;
    formKey = null;
  }

  function saveServer(event) {
    event.preventDefault();
    var errorNode = $("server-form-error");
    var entry;
    try {
      entry = applyForm(readJsonEntry());
    } catch (err) {
      showError(errorNode, err.message);
      return;
    }
    $("sf-json").value = JSON.stringify(entry, null, 2);
    var key = $("sf-key").value.trim();
    if (formMode === "add" && !key) {
      showError(errorNode, "The key is required.");
      return;
    }
    var save = $("server-form-save");
    save.disabled = true;
    var request =
      formMode === "add"
        ? api("POST", BASE + "/servers", { key: key, entry: entry })
        : api("PUT", path("/servers/", formKey), { entry: entry });
    request
      .then(function (data) {
        closeServerForm();
        toast(data.message || 'Server "' + (formKey || key) + '" saved.');
        refreshHealthQuietly();
        return loadServers();
      })
      .catch(function (err) {
        showError(errorNode, err.message);
      })
      .then(function () {
        save.disabled = false;
      });
  }

  function initServerForm() {
    $("server-add").addEventListener("click", function () {
      openServerForm(null);
    });
    $("server-form").addEventListener("submit", saveServer);
    $("server-form-cancel").addEventListener("click", closeServerForm);
    FORM_FIELDS.forEach(function (field) {
      formInput(field.name).addEventListener("input", syncJsonFromForm);
    });
    $("sf-type").addEventListener("change", onTypeChanged);
    $("sf-active").addEventListener("change", syncJsonFromForm);
    $("sf-namePrefix").addEventListener("input", syncJsonFromForm);
    $("sf-noPrefix").addEventListener("change", function () {
      $("sf-namePrefix").disabled = $("sf-noPrefix").checked;
      syncJsonFromForm();
    });
    $("sf-json").addEventListener("input", syncFormFromJson);
  }

  // ================================================================ Tools page

  function loadTools() {
    return api("GET", BASE + "/tools/list")
      .then(function (data) {
        showError($("tools-error"), "");
        state.tools = Array.isArray(data.tools) ? data.tools : [];
        renderTools();
      })
      .catch(function (err) {
        showError($("tools-error"), err.message);
      });
  }

  function renderTools() {
    var list = $("tools-list");
    clear(list);
    if (!state.tools.length) {
      list.appendChild(el("p", { class: "hint", text: "No tools: no backend is linked yet." }));
      return;
    }
    var groups = {};
    var order = [];
    state.tools.forEach(function (tool) {
      var server = tool.serverName || "?";
      if (!groups[server]) {
        groups[server] = [];
        order.push(server);
      }
      groups[server].push(tool);
    });
    order.sort();
    order.forEach(function (server) {
      var tools = groups[server];
      var enabled = tools.filter(function (t) {
        return t.enabled !== false;
      }).length;
      var body = el("tbody");
      tools.forEach(function (tool) {
        body.appendChild(toolRow(tool));
      });
      list.appendChild(
        el(
          "div",
          { class: "tool-group", testid: "tool-group-" + server },
          el("h2", {}, el("code", { text: server }), el("span", { class: "hint", text: enabled + " of " + tools.length + " enabled" })),
          el(
            "table",
            { class: "grid tools" },
            el(
              "thead",
              {},
              el("tr", {}, el("th", { text: "On" }), el("th", { text: "Tool" }), el("th", { text: "Exposed name" }), el("th", { text: "Description override" }), el("th", { text: "" }))
            ),
            body
          )
        )
      );
    });
  }

  function toolRow(tool) {
    var key = tool.configKey;
    var checkbox = el("input", { type: "checkbox", checked: tool.enabled !== false, testid: "tool-enabled-" + key, title: "Enabled" });
    var nameInput = el("input", {
      type: "text",
      value: tool.overrideName || "",
      placeholder: tool.overrideName ? key : tool.exposedName || key,
      testid: "tool-name-" + key,
      spellcheck: "false",
      "aria-label": "Exposed name of " + key,
    });
    var descInput = el("input", {
      type: "text",
      value: tool.overrideDescription || "",
      placeholder: tool.description || "(no description)",
      testid: "tool-desc-" + key,
      "aria-label": "Description override of " + key,
    });
    var errorNode = el("div", { class: "error-text", testid: "tool-error-" + key, hidden: true });
    var save = el("button", { type: "button", class: "small", text: "Save", testid: "tool-save-" + key });
    var row = el(
      "tr",
      { testid: "tool-row-" + key, "data-config-key": key, class: tool.enabled === false ? "disabled" : "" },
      el("td", {}, checkbox),
      el(
        "td",
        { class: "name" },
        el("div", { text: tool.name }),
        el("div", { class: "hint", testid: "tool-exposed-" + key, text: "exposed as " + (tool.exposedName || key) }),
        tool.description ? el("div", { class: "hint tool-description", text: tool.description }) : null
      ),
      el("td", {}, nameInput),
      el("td", {}, descInput, errorNode),
      el("td", { class: "actions" }, save)
    );

    function patch(body, onFail) {
      showError(errorNode, "");
      checkbox.disabled = true;
      save.disabled = true;
      return api("PATCH", path("/tools/", key), body)
        .then(function (data) {
          toast(data.message || "Saved " + key + ".");
          row.setAttribute("data-saved", "1");
          return loadTools();
        })
        .catch(function (err) {
          if (onFail) onFail();
          showError(errorNode, err.message);
          checkbox.disabled = false;
          save.disabled = false;
        });
    }

    checkbox.addEventListener("change", function () {
      var wanted = checkbox.checked;
      patch({ enabled: wanted }, function () {
        checkbox.checked = !wanted;
      });
    });
    function saveNames() {
      patch({ exposedName: nameInput.value.trim(), exposedDescription: descInput.value.trim() });
    }
    save.addEventListener("click", saveNames);
    [nameInput, descInput].forEach(function (input) {
      input.addEventListener("keydown", function (event) {
        if (event.key === "Enter") {
          event.preventDefault();
          saveNames();
        }
      });
    });
    return row;
  }

  // ================================================================ Health page

  function applyHealth(data, sentAt) {
    state.configError = data.configError || null;
    if (data.gateway) {
      state.gateway = data.gateway;
      state.gatewayAt = Date.now();
    }
    var seen = {};
    (data.backends || []).forEach(function (status) {
      seen[status.key] = true;
      setStatus(status, sentAt);
    });
    Object.keys(state.statuses).forEach(function (key) {
      if (!seen[key] && !(sentAt && state.statuses[key].at >= sentAt)) delete state.statuses[key];
    });
    renderConfigError();
    renderHealth();
    state.servers.forEach(function (server) {
      updateServerRow(server.key);
    });
    setText($("health-updated"), "Updated " + new Date().toLocaleTimeString());
  }

  function loadHealth() {
    var sentAt = Date.now();
    return api("GET", BASE + "/health")
      .then(function (data) {
        showError($("health-error"), "");
        applyHealth(data, sentAt);
      })
      .catch(function (err) {
        showError($("health-error"), err.message);
      });
  }

  /* Rows are rebuilt only when the set of backends changed; otherwise their cells are updated in place (a
   * button under the mouse is never replaced by a refresh). */
  function renderHealth() {
    var body = $("health-body");
    var keys = Object.keys(state.statuses).sort();
    var shown = [];
    var rows = body.querySelectorAll("tr[data-key]");
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].getAttribute("data-key") !== "__gateway") shown.push(rows[i].getAttribute("data-key"));
    }
    var same =
      body.querySelector('tr[data-key="__gateway"]') !== null &&
      shown.join("\n") === keys.join("\n") &&
      (keys.length > 0 || body.querySelector("tr[data-empty]") !== null);
    if (!same) {
      clear(body);
      body.appendChild(gatewayRow());
      keys.forEach(function (key) {
        body.appendChild(healthRow(key));
      });
      if (!keys.length) body.appendChild(el("tr", { "data-empty": "1" }, el("td", { colspan: 12, class: "empty", text: "No backends are configured." })));
    }
    updateGatewayRow();
    keys.forEach(function (key) {
      updateHealthRow(key);
    });
  }

  var HEALTH_CELLS = ["type", "state", "pid", "uptime", "restarts", "rss", "cpu", "tools", "error", "stderr"];

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
    var row = el("tr", { class: "gateway", testid: "health-gateway", "data-key": "__gateway" });
    row.appendChild(el("td", {}, el("strong", { text: "gateway" }), el("div", { class: "hint", text: "this HTTP front end" })));
    cells("gateway-", "row").forEach(function (cell) {
      row.appendChild(cell);
    });
    row.appendChild(
      el(
        "td",
        { class: "actions" },
        el("button", { type: "button", class: "small", text: "Logs", testid: "health-logs-gateway", onclick: function () { showLogs("gateway"); } })
      )
    );
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
        el("button", { type: "button", class: "small", text: "Logs", testid: "health-logs-" + key, onclick: function () { showLogs(key); } }),
        el("button", { type: "button", class: "small", text: "Restart", testid: "health-restart-" + key, onclick: function () { backendAction(key, "restart"); } }),
        el("button", { type: "button", class: "small", text: "Stop", testid: "health-toggle-" + key, onclick: function () { toggleBackend(key); } })
      )
    );
    return row;
  }

  function fillHealthCells(row, prefix, key, status, uptime) {
    function cell(name) {
      return row.querySelector('[data-testid="' + cssEscape(prefix + name + "-" + key) + '"]');
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
    var problems = [];
    if (status.last_error) problems.push(status.last_error);
    if (status.last_exit) problems.push(status.last_exit);
    var errorCell = cell("error");
    setText(errorCell, problems.join(" · ") || "—");
    errorCell.classList.toggle("error-text", !!status.last_error);
    setText(cell("stderr"), dash(status.last_stderr));
  }

  function updateGatewayRow() {
    var row = document.querySelector('#health-body tr[data-key="__gateway"]');
    if (!row) return;
    var status = state.gateway;
    if (!status) {
      status = { type: "gateway", state: "UNKNOWN" };
    }
    var uptime = null;
    if (status.state === "RUNNING") {
      if (typeof status.uptime_s === "number") uptime = status.uptime_s + (Date.now() - state.gatewayAt) / 1000;
      else if (typeof status.started_at === "number") uptime = Date.now() / 1000 - status.started_at;
    }
    fillHealthCells(row, "gateway-", "row", status, uptime);
  }

  function updateHealthRow(key) {
    var body = $("health-body");
    var row = body.querySelector('tr[data-key="' + cssEscape(key) + '"]');
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
        if (other !== "__gateway" && other > key) {
          before = rows[i];
          break;
        }
      }
      body.insertBefore(row, before);
    }
    fillHealthCells(row, "health-", key, item.status, uptimeOf(item));
    configureToggle(row.querySelector('[data-testid="health-toggle-' + cssEscape(key) + '"]'), item.status);
  }

  function removeHealthRow(key) {
    var row = document.querySelector('#health-body tr[data-key="' + cssEscape(key) + '"]');
    if (row) row.parentNode.removeChild(row);
  }

  function tickUptimes() {
    if (state.page !== "health") return;
    Object.keys(state.statuses).forEach(function (key) {
      var cell = document.querySelector('[data-testid="health-uptime-' + cssEscape(key) + '"]');
      if (cell) setText(cell, fmtUptime(uptimeOf(state.statuses[key])));
    });
    updateGatewayRow();
  }

  var logsKey = null;

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

  // ================================================================ Installs page

  function installRecord(key) {
    if (!state.installs[key]) state.installs[key] = { lines: [], running: false, exitCode: null, message: "", cancelled: false, finished: false };
    return state.installs[key];
  }

  function installableServers() {
    return state.servers.filter(function (server) {
      return hasInstallCommands(server.entry) && transportOf(server.entry) === "stdio";
    });
  }

  function loadInstalls() {
    return Promise.all([
      loadServers(),
      api("GET", BASE + "/installs").catch(function () {
        return { installs: [] };
      }),
    ]).then(function (results) {
      var list = Array.isArray(results[1].installs) ? results[1].installs : [];
      list.forEach(function (install) {
        var key = install.serverKey;
        if (!key || state.installs[key]) return; // what this page saw live is richer (stdout vs stderr)
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
      state.installSelected = null;
      return;
    }
    select.disabled = false;
    var keys = servers.map(function (s) {
      return s.key;
    });
    if (keys.indexOf(state.installSelected) < 0) state.installSelected = keys[0];
    servers.forEach(function (server) {
      select.appendChild(el("option", { value: server.key, text: server.key, selected: server.key === state.installSelected }));
    });
    select.value = state.installSelected;
  }

  function lineNode(line) {
    var cls = "line " + line.kind + (line.fail ? " error" : "");
    return el("span", { class: cls, "data-kind": line.kind, testid: "install-line", text: line.text });
  }

  function renderInstall() {
    var key = state.installSelected;
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
    var record = state.installs[key];
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
    run.disabled = running || !state.installSelected;
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
    if (record.lines.length > 5000) record.lines.splice(0, record.lines.length - 5000);
    if (state.page === "installs" && state.installSelected === key) {
      var output = $("install-output");
      var muted = output.querySelector(".muted");
      if (muted) output.removeChild(muted);
      var nearBottom = output.scrollHeight - output.scrollTop - output.clientHeight < 40;
      output.appendChild(lineNode(line));
      if (nearBottom) output.scrollTop = output.scrollHeight;
    }
  }

  function onInstallEvent(name, data) {
    var key = data.serverKey;
    if (!key) return;
    var record = installRecord(key);
    if (name !== "install_complete" && !record.running && record.finished) {
      // another install of this key started (maybe from another tab): start a fresh log
      record.lines = [];
      record.finished = false;
      record.cancelled = false;
      record.exitCode = null;
      if (state.page === "installs" && state.installSelected === key) renderInstall();
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
    if (state.page === "installs" && state.installSelected === key) renderInstallStatus(record);
  }

  function runInstall(key) {
    key = key || state.installSelected;
    if (!key) return;
    state.installSelected = key;
    var record = installRecord(key);
    record.lines = [];
    record.running = true;
    record.finished = false;
    record.cancelled = false;
    record.failed = false;
    record.exitCode = null;
    record.message = "";
    if (state.page === "installs") renderInstall();
    api("POST", path("/server/install/", key))
      .then(function (data) {
        if (record.running && !record.finished) {
          record.message = data.message || "";
          if (state.page === "installs" && state.installSelected === key) renderInstallStatus(record);
        }
      })
      .catch(function (err) {
        record.running = false;
        record.failed = true;
        record.message = err.message;
        appendInstallLine(key, { kind: "error", text: err.message });
        if (state.page === "installs" && state.installSelected === key) renderInstallStatus(record);
      });
  }

  function cancelInstall() {
    var key = state.installSelected;
    if (!key) return;
    $("install-cancel").disabled = true;
    api("POST", path("/server/install/", key, "/cancel"))
      .then(function (data) {
        if (data.message) toast(data.message);
      })
      .catch(function (err) {
        toast(err.message, true);
        renderInstallStatus(state.installs[key]);
      });
  }

  function initInstalls() {
    $("install-select").addEventListener("change", function () {
      state.installSelected = $("install-select").value || null;
      renderInstall();
    });
    $("install-run").addEventListener("click", function () {
      runInstall(state.installSelected);
    });
    $("install-cancel").addEventListener("click", cancelInstall);
  }

  // ================================================================ Terminal page

  var term = {
    id: null,
    ws: null,
    lines: [""],
    row: 0,
    col: 0,
    pending: "",
    cols: 80,
    rows: 24,
    renderTimer: null,
    exited: false,
  };
  var MAX_TERM_LINES = 5000;

  function termReset() {
    term.lines = [""];
    term.row = 0;
    term.col = 0;
    term.pending = "";
    termRender();
  }

  function termScreenTop() {
    return Math.max(0, term.lines.length - term.rows);
  }

  function termEnsureRow(row) {
    while (term.lines.length <= row) term.lines.push("");
  }

  function termNewline() {
    term.row++;
    termEnsureRow(term.row);
    if (term.lines.length > MAX_TERM_LINES) {
      var drop = term.lines.length - MAX_TERM_LINES;
      term.lines.splice(0, drop);
      term.row = Math.max(0, term.row - drop);
    }
  }

  function termPut(ch) {
    if (term.col >= term.cols) {
      // deferred auto-wrap, as xterm does: the character after the last column starts the next line
      termNewline();
      term.col = 0;
    }
    var line = term.lines[term.row];
    if (line.length < term.col) line += new Array(term.col - line.length + 1).join(" ");
    term.lines[term.row] = line.slice(0, term.col) + ch + line.slice(term.col + 1);
    term.col++;
  }

  function termCsi(params, final) {
    if (params.charAt(0) === "?" || params.charAt(0) === ">" || params.charAt(0) === "=") return; // modes: ignored
    var parts = params.split(";").map(function (p) {
      return p === "" ? NaN : parseInt(p, 10);
    });
    var n = isNaN(parts[0]) ? 1 : Math.max(1, parts[0]);
    var line = term.lines[term.row];
    switch (final) {
      case "K": {
        var mode = isNaN(parts[0]) ? 0 : parts[0];
        if (mode === 0) term.lines[term.row] = line.slice(0, term.col);
        else if (mode === 1) term.lines[term.row] = new Array(Math.min(term.col, line.length) + 2).join(" ") + line.slice(term.col + 1);
        else term.lines[term.row] = "";
        break;
      }
      case "J": {
        var jmode = isNaN(parts[0]) ? 0 : parts[0];
        if (jmode === 2 || jmode === 3) {
          term.lines = [""];
          term.row = 0;
          term.col = 0;
        } else if (jmode === 0) {
          term.lines[term.row] = line.slice(0, term.col);
          term.lines.length = term.row + 1;
        }
        break;
      }
      case "H":
      case "f": {
        var top = termScreenTop();
        var r = isNaN(parts[0]) ? 1 : parts[0];
        var c = isNaN(parts[1]) ? 1 : parts[1];
        term.row = top + Math.max(0, r - 1);
        term.col = Math.max(0, c - 1);
        termEnsureRow(term.row);
        break;
      }
      case "A":
        term.row = Math.max(termScreenTop(), term.row - n);
        break;
      case "B":
        term.row += n;
        termEnsureRow(term.row);
        break;
      case "C":
        term.col = Math.min(term.cols - 1, term.col + n);
        break;
      case "D":
        term.col = Math.max(0, Math.min(term.col, term.cols) - n);
        break;
      case "G":
        term.col = Math.max(0, (isNaN(parts[0]) ? 1 : parts[0]) - 1);
        break;
      case "P":
        term.lines[term.row] = line.slice(0, term.col) + line.slice(term.col + n);
        break;
      case "@":
        if (term.col < line.length) term.lines[term.row] = line.slice(0, term.col) + new Array(n + 1).join(" ") + line.slice(term.col);
        break;
      case "X":
        if (term.col < line.length) term.lines[term.row] = line.slice(0, term.col) + new Array(n + 1).join(" ") + line.slice(term.col + n);
        break;
      default:
        break; // colours (m) and everything else: dropped
    }
  }

  /* Feed PTY output: printable text is drawn at the cursor; \r, \n, \b, \t move it; escape sequences are
   * stripped (the few that edit the line, such as erase-to-end-of-line, are applied). */
  function termWrite(data) {
    var s = term.pending + data;
    term.pending = "";
    var i = 0;
    while (i < s.length) {
      var ch = s.charAt(i);
      if (ch === "\x1b") {
        if (i + 1 >= s.length) {
          term.pending = s.slice(i);
          break;
        }
        var next = s.charAt(i + 1);
        if (next === "[") {
          var j = i + 2;
          while (j < s.length && s.charCodeAt(j) >= 0x30 && s.charCodeAt(j) <= 0x3f) j++;
          while (j < s.length && s.charCodeAt(j) >= 0x20 && s.charCodeAt(j) <= 0x2f) j++;
          if (j >= s.length) {
            term.pending = s.slice(i);
            break;
          }
          termCsi(s.slice(i + 2, j), s.charAt(j));
          i = j + 1;
          continue;
        }
        if (next === "]" || next === "P" || next === "_" || next === "^" || next === "X") {
          var k = i + 2;
          var end = -1;
          while (k < s.length) {
            if (s.charAt(k) === "\x07") {
              end = k + 1;
              break;
            }
            if (s.charAt(k) === "\x1b" && k + 1 < s.length && s.charAt(k + 1) === "\\") {
              end = k + 2;
              break;
            }
            k++;
          }
          if (end < 0) {
            term.pending = s.length - i < 4096 ? s.slice(i) : "";
            break;
          }
          i = end;
          continue;
        }
        if ("()*+#%".indexOf(next) >= 0) {
          if (i + 2 >= s.length) {
            term.pending = s.slice(i);
            break;
          }
          i += 3;
          continue;
        }
        i += 2; // ESC 7, ESC 8, ESC =, ESC >, ESC M ...
        continue;
      }
      if (ch === "\r") term.col = 0;
      else if (ch === "\n") termNewline();
      else if (ch === "\b") term.col = Math.max(0, Math.min(term.col, term.cols) - 1);
      else if (ch === "\t") {
        var stop = Math.min(term.cols - 1, (Math.floor(term.col / 8) + 1) * 8);
        while (term.col < stop) termPut(" ");
      } else if (ch.charCodeAt(0) < 0x20 || ch === "\x7f") {
        // other control characters (BEL, SO, SI ...): nothing to draw
      } else termPut(ch);
      i++;
    }
    termScheduleRender();
  }

  function termScheduleRender() {
    if (term.renderTimer) return;
    term.renderTimer = setTimeout(function () {
      term.renderTimer = null;
      termRender();
    }, 16);
  }

  function termRender() {
    var pre = $("terminal-output");
    if (!pre) return;
    var stick = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 30;
    clear(pre);
    var before = term.lines.slice(0, term.row);
    var line = term.lines[term.row] || "";
    var after = term.lines.slice(term.row + 1);
    var head = before.length ? before.join("\n") + "\n" : "";
    var col = Math.min(term.col, term.cols - 1);
    if (line.length < col) line += new Array(col - line.length + 1).join(" ");
    pre.appendChild(document.createTextNode(head + line.slice(0, col)));
    pre.appendChild(el("span", { class: "cursor", text: line.charAt(col) || " " }));
    pre.appendChild(document.createTextNode(line.slice(col + 1) + (after.length ? "\n" + after.join("\n") : "")));
    if (stick) pre.scrollTop = pre.scrollHeight;
  }

  function termMeasure() {
    var pre = $("terminal-output");
    var probe = $("terminal-measure");
    var style = window.getComputedStyle(pre);
    var charWidth = probe.getBoundingClientRect().width / probe.textContent.length || 8;
    var lineHeight = probe.getBoundingClientRect().height || 17;
    var width = pre.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    var height = pre.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
    return {
      cols: Math.max(20, Math.floor(width / charWidth) - 1),
      rows: Math.max(5, Math.floor(height / lineHeight)),
    };
  }

  function termSend(message) {
    if (term.ws && term.ws.readyState === WebSocket.OPEN) term.ws.send(JSON.stringify(message));
  }

  function termStatus(text) {
    setText($("terminal-status"), text);
  }

  function termSetButtons() {
    var open = !!term.id;
    $("terminal-start").disabled = open;
    $("terminal-close").disabled = !open;
    document.body.setAttribute("data-terminal", term.ws && term.ws.readyState === WebSocket.OPEN ? "open" : open ? "starting" : "closed");
  }

  function termStart() {
    if (term.id) return;
    var size = termMeasure();
    term.cols = size.cols;
    term.rows = size.rows;
    term.exited = false;
    termReset();
    termStatus("Starting…");
    $("terminal-start").disabled = true;
    api("POST", BASE + "/terminal/start", { cols: size.cols, rows: size.rows })
      .then(function (data) {
        if (!data.termId) throw new ApiError(0, "The gateway did not return a terminal id.");
        term.id = data.termId;
        termConnect(term.id);
      })
      .catch(function (err) {
        termStatus(err.message);
        termSetButtons();
      });
  }

  function termConnect(id) {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(scheme + window.location.host + path("/terminal/", id, "/ws"));
    term.ws = ws;
    termSetButtons();
    ws.onopen = function () {
      termStatus("Connected (terminal " + id + ").");
      termSetButtons();
      var size = termMeasure();
      term.cols = size.cols;
      term.rows = size.rows;
      termSend({ type: "resize", cols: size.cols, rows: size.rows });
      $("terminal-output").focus();
    };
    ws.onmessage = function (event) {
      var message;
      try {
        message = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (message.type === "output" && typeof message.data === "string") termWrite(message.data);
      else if (message.type === "exit") {
        term.exited = true;
        termWrite("\r\n[the shell exited with code " + message.code + "]\r\n");
        termStatus("The shell exited with code " + message.code + ".");
      }
    };
    ws.onclose = function (event) {
      if (event.code === 4401) goLogin(); // the admin session is gone
      if (term.ws !== ws) return;
      term.ws = null;
      term.id = null;
      if (!term.exited) termStatus("Disconnected" + (event.code && event.code !== 1000 ? " (code " + event.code + ")" : "") + ".");
      termSetButtons();
    };
  }

  function termClose() {
    var id = term.id;
    var ws = term.ws;
    term.id = null;
    term.ws = null;
    if (ws) ws.close();
    termSetButtons();
    termStatus("Closed.");
    if (id) {
      api("DELETE", path("/terminal/", id)).catch(function (err) {
        if (err.status !== 404) toast(err.message, true);
      });
    }
  }

  var KEYS = {
    Enter: "\r",
    Backspace: "\x7f",
    Tab: "\t",
    Escape: "\x1b",
    ArrowUp: "\x1b[A",
    ArrowDown: "\x1b[B",
    ArrowRight: "\x1b[C",
    ArrowLeft: "\x1b[D",
    Home: "\x1b[H",
    End: "\x1b[F",
    Insert: "\x1b[2~",
    Delete: "\x1b[3~",
    PageUp: "\x1b[5~",
    PageDown: "\x1b[6~",
  };

  function keyToInput(event) {
    if (event.isComposing) return null;
    var key = event.key;
    if (event.metaKey) return null;
    if (event.ctrlKey && event.shiftKey) return null; // Ctrl+Shift+C / V: the browser's copy and paste
    if (event.ctrlKey && !event.altKey) {
      if (key === "v" || key === "V") return null; // paste arrives as a paste event
      if (key.length === 1) {
        var code = key.toUpperCase().charCodeAt(0);
        if (code >= 64 && code <= 95) return String.fromCharCode(code - 64);
        if (key === " " || key === "2") return "\x00";
        if (key === "?") return "\x7f";
      }
    }
    if (key === "Tab" && event.shiftKey) return "\x1b[Z";
    if (Object.prototype.hasOwnProperty.call(KEYS, key)) return (event.altKey ? "\x1b" : "") + KEYS[key];
    if (key.length === 1 && !event.ctrlKey) return (event.altKey ? "\x1b" : "") + key;
    return null;
  }

  function initTerminal() {
    var pre = $("terminal-output");
    $("terminal-start").addEventListener("click", termStart);
    $("terminal-close").addEventListener("click", termClose);
    pre.addEventListener("keydown", function (event) {
      if (!term.ws) return;
      var input = keyToInput(event);
      if (input === null) return;
      event.preventDefault();
      termSend({ type: "input", data: input });
    });
    pre.addEventListener("paste", function (event) {
      if (!term.ws) return;
      var text = (event.clipboardData || window.clipboardData).getData("text");
      if (text) {
        event.preventDefault();
        termSend({ type: "input", data: text.replace(/\r?\n/g, "\r") });
      }
    });
    pre.addEventListener("click", function () {
      if (!window.getSelection().toString()) pre.focus();
    });
    var resizeTimer = null;
    window.addEventListener("resize", function () {
      if (resizeTimer) clearTimeout(resizeTimer);
      resizeTimer = setTimeout(function () {
        resizeTimer = null;
        if (state.page !== "terminal") return;
        var size = termMeasure();
        if (size.cols === term.cols && size.rows === term.rows) return;
        term.cols = size.cols;
        term.rows = size.rows;
        termSend({ type: "resize", cols: size.cols, rows: size.rows });
        termRender();
      }, 150);
    });
    termRender();
    termSetButtons();
  }

  function terminalShown() {
    if (term.ws) $("terminal-output").focus();
  }

  // ================================================================ start-up

  function initApp() {
    api("GET", BASE + "/session")
      .then(function (data) {
        session = data;
        csrfToken = data.csrfToken || null;
        setText($("username"), data.username || "admin");
        $("default-credentials-banner").hidden = !data.defaultCredentials;
        var terminalTab = document.querySelector('#tabs a[data-tab="terminal"]');
        terminalTab.hidden = !data.webTerminal;
        $("reload-config").addEventListener("click", reloadConfig);
        $("logout").addEventListener("click", logout);
        $("reload-message").addEventListener("click", function () {
          $("reload-message").hidden = true;
        });
        $("logs-close").addEventListener("click", function () {
          $("logs-panel").hidden = true;
        });
        $("logs-refresh").addEventListener("click", function () {
          if (logsKey) showLogs(logsKey);
        });
        $("tools-refresh").addEventListener("click", loadTools);
        initServerForm();
        initInstalls();
        if (data.webTerminal) initTerminal();
        connectEvents();
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
        if (err.status !== 401) {
          var banner = $("config-error-banner");
          setText(banner, "The admin API did not answer: " + err.message);
          banner.hidden = false;
        }
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var page = document.body.getAttribute("data-page");
    if (page === "login") initLogin();
    else if (page === "app") initApp();
  });
})();

/* The Clients page: config/clients.json, which principal may see and call what.
 *
 * Lists the entries in file order (a principal gets the first it matches, else "*", else nothing) with what
 * each one sees of the live catalog (computed by the gateway), and edits, adds, reorders and deletes entries.
 * Every change writes the whole document with POST /admin/clients: the supervisor's loader validates it (its
 * error is shown as it is) and the hot reload applies it, announcing list_changed to every client.
 */

import { BASE, api } from "./api.js";
import { $, clear, el, showError, smallButton } from "./dom.js";
import { isObject } from "./entry.js";
import { toast } from "./notices.js";
import { closeClientForm, initClientForm, openClientForm } from "./client-form.js";

let model = { present: false, document: null, views: {}, servers: [], fileError: null }; // GET /admin/clients

function entries() {
  var clients = isObject(model.document) && isObject(model.document.clients) ? model.document.clients : {};
  return Object.keys(clients).map(function (name) {
    return { name: name, entry: isObject(clients[name]) ? clients[name] : {} };
  });
}

export function loadClients() {
  return api("GET", BASE + "/clients")
    .then(function (data) {
      showError($("clients-error"), "");
      model = data;
      renderClients();
    })
    .catch(function (err) {
      showError($("clients-error"), err.message);
    });
}

function plural(count, word) {
  return count + " " + word + (count === 1 ? "" : "s");
}

function matchSummary(name, entry) {
  if (name === "*") return "everyone else";
  var match = isObject(entry.match) ? entry.match : {};
  var parts = [];
  if (match.stdio === true) parts.push("the stdio client");
  // Keys and tokens are secrets: counted here, shown only in the form.
  if (Array.isArray(match.keys) && match.keys.length) parts.push(plural(match.keys.length, "key"));
  if (Array.isArray(match.tokens) && match.tokens.length) parts.push(plural(match.tokens.length, "token"));
  if (isObject(match.claims)) {
    Object.keys(match.claims).forEach(function (claim) {
      parts.push(claim + "=" + String(match.claims[claim]));
    });
  }
  return parts.length ? parts.join(", ") : "(nothing)";
}

function patternSummary(patterns) {
  if (!isObject(patterns)) return "all";
  var parts = [];
  if (Array.isArray(patterns.allow)) parts.push("allow " + (patterns.allow.length ? patterns.allow.join(", ") : "(none)"));
  if (Array.isArray(patterns.deny) && patterns.deny.length) parts.push("deny " + patterns.deny.join(", "));
  return parts.length ? parts.join("; ") : "all";
}

function serversSummary(entry) {
  var servers = Array.isArray(entry.servers) ? entry.servers : ["*"];
  if (servers.indexOf("*") >= 0) return "all";
  return servers.length ? servers.join(", ") : "(none)";
}

function seesCell(name) {
  var view = model.views && model.views[name];
  if (!view) return el("td", { class: "hint", text: "—" });
  var summary = plural(view.tools.length, "tool") + ", " + plural(view.prompts.length, "prompt") + ", " + plural(view.resources.length, "resource");
  var names = view.tools.length ? view.tools.join("\n") : "(no tools)";
  return el(
    "td",
    { class: "wrap" },
    el("details", {}, el("summary", { text: summary, testid: "client-sees-" + name }), el("pre", { class: "sees", text: names, testid: "client-tools-" + name }))
  );
}

function renderClients() {
  var present = !!model.present;
  var absent = $("clients-absent");
  absent.hidden = present;
  $("clients-delete-file").hidden = !present;
  var list = entries();
  var hasFallback = list.some(function (item) {
    return item.name === "*";
  });
  $("clients-no-fallback").hidden = !present || hasFallback;
  showError($("clients-file-error"), model.fileError ? "clients.json on disk is not applied (" + model.fileError + "). The running one stays." : "");
  var body = $("clients-body");
  clear(body);
  $("clients-table").hidden = !present;
  if (present && !list.length) {
    body.appendChild(el("tr", {}, el("td", { colspan: 7, class: "empty", text: "No clients: every principal gets nothing." })));
  }
  list.forEach(function (item, index) {
    var name = item.name;
    var entry = item.entry;
    var actions = el(
      "td",
      { class: "actions" },
      smallButton("Edit", "client-edit-" + name, function () {
        openClientForm(model, name);
      }),
      name !== "*" && index > 0
        ? smallButton("Up", "client-up-" + name, function () {
            moveUp(name);
          })
        : null,
      smallButton("Delete", "client-delete-" + name, function () {
        deleteClient(name);
      }, "danger")
    );
    body.appendChild(
      el(
        "tr",
        { testid: "client-row-" + name, "data-key": name },
        el("td", {}, el("code", { text: name })),
        el("td", { class: "wrap", text: matchSummary(name, entry), testid: "client-match-" + name }),
        el("td", { class: "wrap", text: serversSummary(entry), testid: "client-servers-" + name }),
        el("td", { class: "wrap mono", text: patternSummary(entry.tools), testid: "client-tools-rule-" + name }),
        el("td", { class: "wrap mono", text: patternSummary(entry.resources), testid: "client-resources-rule-" + name }),
        seesCell(name),
        actions
      )
    );
  });
}

/* The document with `clients` rebuilt from an ordered list of [name, entry]; other top-level keys are kept. */
function withClients(pairs) {
  var document = isObject(model.document) ? JSON.parse(JSON.stringify(model.document)) : {};
  var clients = {};
  pairs.forEach(function (pair) {
    clients[pair[0]] = pair[1];
  });
  document.clients = clients;
  return document;
}

function write(document, done) {
  return api("POST", BASE + "/clients", document).then(function (data) {
    toast(data.message || done);
    return loadClients();
  });
}

/* Saves one entry: replaced in place (renamed in place), or added before "*" (which matches last anyway). */
function saveClient(name, previous, entry, keepOthers) {
  var pairs = entries().map(function (item) {
    return [item.name, item.entry];
  });
  var clash = pairs.some(function (pair) {
    return pair[0] === name && pair[0] !== previous;
  });
  if (clash) return Promise.reject(new Error('A client "' + name + '" exists already.'));
  if (previous !== null) {
    pairs = pairs.map(function (pair) {
      return pair[0] === previous ? [name, entry] : pair;
    });
  } else {
    var at = pairs.findIndex(function (pair) {
      return pair[0] === "*";
    });
    if (at < 0 || name === "*") pairs.push([name, entry]);
    else pairs.splice(at, 0, [name, entry]);
    // A new file: everyone else keeps seeing everything unless the admin said otherwise.
    if (keepOthers && name !== "*" && at < 0) pairs.push(["*", { servers: ["*"] }]);
  }
  return write(withClients(pairs), 'Client "' + name + '" saved.');
}

function moveUp(name) {
  var pairs = entries().map(function (item) {
    return [item.name, item.entry];
  });
  var at = pairs.findIndex(function (pair) {
    return pair[0] === name;
  });
  if (at <= 0) return;
  var moved = pairs.splice(at, 1)[0];
  pairs.splice(at - 1, 0, moved);
  write(withClients(pairs), 'Client "' + name + '" moved up.').catch(function (err) {
    toast(err.message, true);
  });
}

function deleteClient(name) {
  if (!window.confirm('Delete client "' + name + '"? Its principals get the "*" entry (or nothing) from then on.')) return;
  var pairs = entries()
    .filter(function (item) {
      return item.name !== name;
    })
    .map(function (item) {
      return [item.name, item.entry];
    });
  closeClientForm();
  write(withClients(pairs), 'Client "' + name + '" deleted.').catch(function (err) {
    toast(err.message, true);
  });
}

function deleteFile() {
  if (!window.confirm("Delete clients.json? Every client then sees everything.")) return;
  closeClientForm();
  api("DELETE", BASE + "/clients")
    .then(function (data) {
      toast(data.message || "clients.json removed.");
      return loadClients();
    })
    .catch(function (err) {
      toast(err.message, true);
    });
}

export function initClients() {
  $("clients-add").addEventListener("click", function () {
    openClientForm(model, null);
  });
  $("clients-refresh").addEventListener("click", loadClients);
  $("clients-delete-file").addEventListener("click", deleteFile);
  initClientForm(saveClient);
}

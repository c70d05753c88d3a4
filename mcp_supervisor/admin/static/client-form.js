/* The Clients page's add / edit form for one clients.json entry, kept in sync with the entry's advanced JSON.
 *
 * As in the server form, the form edits a copy of the raw entry: a field is written back only when its text
 * differs from the rendering of the entry's current value, so untouched values keep their exact form and
 * fields the form does not show (e.g. "prompts") survive.
 */

import { $, clear, el, setText, showError, showingErrors } from "./dom.js";
import { isObject } from "./entry.js";

// [input id suffix, path in the entry, kind]
const FIELDS = [
  ["keys", ["match", "keys"], "lines"],
  ["tokens", ["match", "tokens"], "lines"],
  ["claims", ["match", "claims"], "map"],
  ["tools-allow", ["tools", "allow"], "lines"],
  ["tools-deny", ["tools", "deny"], "lines"],
  ["resources-allow", ["resources", "allow"], "lines"],
  ["resources-deny", ["resources", "deny"], "lines"],
];

let editing = null; // the name of the entry being edited, null when adding
let serverKeys = []; // the keys offered as checkboxes
let onSave = null; // (name, previousName, entry, keepOthers) -> promise

function input(suffix) {
  return $("cf-" + suffix);
}

function getPath(entry, path) {
  var value = entry;
  for (var i = 0; i < path.length; i++) {
    if (!isObject(value)) return undefined;
    value = value[path[i]];
  }
  return value;
}

/* Sets (or, with undefined, deletes) entry[path], dropping parent objects left empty. */
function setPath(entry, path, value) {
  var parent = entry;
  for (var i = 0; i < path.length - 1; i++) {
    if (!isObject(parent[path[i]])) {
      if (value === undefined) return;
      parent[path[i]] = {};
    }
    parent = parent[path[i]];
  }
  var last = path[path.length - 1];
  if (value === undefined) delete parent[last];
  else parent[last] = value;
  if (value === undefined && path.length > 1 && Object.keys(parent).length === 0) setPath(entry, path.slice(0, -1), undefined);
}

function render(kind, value) {
  if (value === undefined || value === null) return "";
  if (kind === "lines") return Array.isArray(value) ? value.map(String).join("\n") : String(value);
  if (!isObject(value)) return "";
  return Object.keys(value)
    .map(function (name) {
      return name + "=" + String(value[name]);
    })
    .join("\n");
}

function parse(kind, text, label) {
  var lines = text.split(/\r?\n/).map(function (line) {
    return line.trim();
  });
  lines = lines.filter(function (line) {
    return line !== "";
  });
  if (!lines.length) return undefined;
  if (kind === "lines") return lines;
  var result = {};
  lines.forEach(function (line) {
    var at = line.indexOf("=");
    if (at <= 0) throw new Error(label + ': "' + line + '" must look like claim=value.');
    result[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  });
  return result;
}

function effectiveServers(entry) {
  return Array.isArray(entry.servers) ? entry.servers.map(String) : ["*"];
}

function renderServers(entry) {
  var box = $("cf-servers");
  clear(box);
  var current = effectiveServers(entry);
  var all = current.indexOf("*") >= 0;
  var keys = serverKeys.slice();
  current.forEach(function (key) {
    if (key !== "*" && keys.indexOf(key) < 0) keys.push(key); // a key the file names but no server has
  });
  box.appendChild(
    el("label", { class: "server-choice all" }, el("input", { type: "checkbox", value: "*", checked: all, testid: "cf-server-all" }), " all servers (*)")
  );
  keys.forEach(function (key) {
    var box_ = el("input", { type: "checkbox", value: key, checked: all || current.indexOf(key) >= 0, disabled: all, testid: "cf-server-" + key });
    box.appendChild(el("label", { class: "server-choice" }, box_, " ", el("code", { text: key })));
  });
}

function chosenServers() {
  var boxes = $("cf-servers").querySelectorAll("input[type=checkbox]");
  var chosen = [];
  for (var i = 0; i < boxes.length; i++) {
    if (boxes[i].value === "*" && boxes[i].checked) return ["*"];
    if (boxes[i].value !== "*" && boxes[i].checked) chosen.push(boxes[i].value);
  }
  return chosen;
}

function sameSet(a, b) {
  return a.length === b.length && a.every(function (item) {
    return b.indexOf(item) >= 0;
  });
}

function fill(entry) {
  FIELDS.forEach(function (field) {
    input(field[0]).value = render(field[2], getPath(entry, field[1]));
  });
  input("stdio").checked = getPath(entry, ["match", "stdio"]) === true;
  renderServers(entry);
}

/* The form's edits applied to `entry` (mutated); throws an Error with a sentence on a malformed field. */
function apply(entry) {
  FIELDS.forEach(function (field) {
    var text = input(field[0]).value;
    if (text === render(field[2], getPath(entry, field[1]))) return;
    setPath(entry, field[1], parse(field[2], text, field[0]));
  });
  var stdio = input("stdio").checked;
  if (stdio !== (getPath(entry, ["match", "stdio"]) === true)) setPath(entry, ["match", "stdio"], stdio ? true : undefined);
  var servers = chosenServers();
  if (!sameSet(servers, effectiveServers(entry))) entry.servers = servers;
  return entry;
}

function readJson() {
  var text = input("json").value.trim();
  if (!text) return {};
  var value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error("The advanced JSON is not valid JSON: " + e.message);
  }
  if (!isObject(value)) throw new Error("The advanced JSON must be a JSON object (the client's entry).");
  return value;
}

function writeJson(entry) {
  input("json").value = JSON.stringify(entry, null, 2);
}

function syncJsonFromForm() {
  showingErrors($("client-form-error"), function () {
    writeJson(apply(readJson()));
  });
}

function syncFormFromJson() {
  showingErrors($("client-form-error"), function () {
    fill(readJson());
  });
}

function showMatchGroup() {
  var fallback = input("name").value.trim() === "*";
  $("cf-match-group").hidden = fallback;
  setText($("cf-fallback-hint"), fallback ? 'The "*" entry is for every principal that matches no other entry; it takes no match.' : "");
}

/* Opens the form: `name` null adds an entry. `model`: {document, servers, present}. */
export function openClientForm(model, name) {
  serverKeys = Array.isArray(model.servers) ? model.servers.slice() : [];
  var clients = isObject(model.document) && isObject(model.document.clients) ? model.document.clients : {};
  var entry;
  showError($("client-form-error"), "");
  if (name === null || name === undefined) {
    editing = null;
    entry = { match: {}, servers: ["*"] };
    setText($("client-form-title"), "Add client");
    input("name").value = "";
  } else {
    editing = name;
    entry = isObject(clients[name]) ? JSON.parse(JSON.stringify(clients[name])) : {};
    setText($("client-form-title"), 'Edit client "' + name + '"');
    input("name").value = name;
  }
  input("name").disabled = editing === "*";
  $("cf-keep-others-field").hidden = !!model.present;
  input("keep-others").checked = true;
  writeJson(entry);
  fill(entry);
  showMatchGroup();
  $("client-form").hidden = false;
  $("client-form").scrollIntoView({ block: "start" });
  input(editing === null ? "name" : "keys").focus();
}

export function closeClientForm() {
  $("client-form").hidden = true;
  editing = null;
}

function submit(event) {
  event.preventDefault();
  var errorNode = $("client-form-error");
  var entry;
  try {
    entry = apply(readJson());
  } catch (err) {
    showError(errorNode, err.message);
    return;
  }
  writeJson(entry);
  var name = input("name").value.trim();
  if (!name) {
    showError(errorNode, "The client's name is required.");
    return;
  }
  if (name === "*" && entry.match !== undefined) delete entry.match;
  var save = $("client-form-save");
  save.disabled = true;
  onSave(name, editing, entry, !$("cf-keep-others-field").hidden && input("keep-others").checked)
    .then(function () {
      closeClientForm();
    })
    .catch(function (err) {
      showError(errorNode, err.message);
    })
    .then(function () {
      save.disabled = false;
    });
}

/* `save(name, previousName, entry, keepOthers)`: writes the document; its promise rejects with the API's error. */
export function initClientForm(save) {
  onSave = save;
  $("client-form").addEventListener("submit", submit);
  $("client-form-cancel").addEventListener("click", closeClientForm);
  FIELDS.forEach(function (field) {
    input(field[0]).addEventListener("input", syncJsonFromForm);
  });
  input("stdio").addEventListener("change", syncJsonFromForm);
  input("name").addEventListener("input", showMatchGroup);
  $("cf-servers").addEventListener("change", function (event) {
    if (event.target && event.target.value === "*") {
      var boxes = $("cf-servers").querySelectorAll("input[type=checkbox]");
      for (var i = 0; i < boxes.length; i++) {
        if (boxes[i].value === "*") continue;
        boxes[i].disabled = event.target.checked;
        if (event.target.checked) boxes[i].checked = true;
      }
    }
    syncJsonFromForm();
  });
  input("json").addEventListener("input", syncFormFromJson);
}

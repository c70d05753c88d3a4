/* The Servers page's add / edit form, kept in sync with the advanced JSON of the entry.
 *
 * The form edits a copy of the raw entry (shown as the advanced JSON): a field is written back only when its
 * text differs from the rendering of the entry's current value, so untouched values keep their exact form and
 * fields the form does not know survive.
 */

import { BASE, api, path } from "./api.js";
import { $, setText, showError, showingErrors } from "./dom.js";
import { isActive, isObject, transportOf } from "./entry.js";
import { serverEntry } from "./state.js";
import { toast } from "./notices.js";
import { SANDBOX_INPUTS, applySandbox, clearSandbox, fillSandbox } from "./sandbox-form.js";

const FORM_FIELDS = [
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

let formMode = null; // "add" | "edit"
let formKey = null;
let onSaved = null; // called after a successful save; its promise is the save's

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
  fillSandbox(entry);
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
  return applySandbox(entry);
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

function writeJsonEntry(entry) {
  $("sf-json").value = JSON.stringify(entry, null, 2);
}

function syncJsonFromForm() {
  showingErrors($("server-form-error"), function () {
    writeJsonEntry(applyForm(readJsonEntry()));
  });
}

function syncFormFromJson() {
  showingErrors($("server-form-error"), function () {
    fillForm(readJsonEntry());
  });
}

function onTypeChanged() {
  // Switching transports drops the fields of the other kind (they would only confuse the entry).
  var type = $("sf-type").value;
  FORM_FIELDS.forEach(function (field) {
    if (!field.group) return;
    var keep = type === "stdio" ? field.group === "stdio" : field.group === "remote";
    if (!keep) formInput(field.name).value = "";
  });
  if (type !== "stdio") clearSandbox();
  showGroups();
  syncJsonFromForm();
}

/* Opens the form on a new server (key null) or on the server `key`. */
export function openServerForm(key) {
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
  writeJsonEntry(entry);
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
  writeJsonEntry(entry);
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
      return onSaved();
    })
    .catch(function (err) {
      showError(errorNode, err.message);
    })
    .then(function () {
      save.disabled = false;
    });
}

/* `saved`: what to do after a successful save (refresh the pages); may return a promise. */
export function initServerForm(saved) {
  onSaved = saved;
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
  SANDBOX_INPUTS.forEach(function (id) {
    $(id).addEventListener($(id).type === "checkbox" || $(id).tagName === "SELECT" ? "change" : "input", syncJsonFromForm);
  });
  $("sf-json").addEventListener("input", syncFormFromJson);
}

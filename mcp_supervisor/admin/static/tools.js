/* The Tools page: every tool of every linked backend, grouped by server; enable / disable and the name and
 * description overrides of tool_config.json, applied at once. */

import { BASE, api, path } from "./api.js";
import { $, clear, el, showError, smallButton } from "./dom.js";
import { toast } from "./notices.js";

let tools = []; // from GET /admin/tools/list

export function loadTools() {
  return api("GET", BASE + "/tools/list")
    .then(function (data) {
      showError($("tools-error"), "");
      tools = Array.isArray(data.tools) ? data.tools : [];
      renderTools();
    })
    .catch(function (err) {
      showError($("tools-error"), err.message);
    });
}

function renderTools() {
  var list = $("tools-list");
  clear(list);
  if (!tools.length) {
    list.appendChild(el("p", { class: "hint", text: "No tools: no backend is linked yet." }));
    return;
  }
  var groups = {};
  var order = [];
  tools.forEach(function (tool) {
    var server = tool.serverName || "?";
    if (!groups[server]) {
      groups[server] = [];
      order.push(server);
    }
    groups[server].push(tool);
  });
  order.sort();
  order.forEach(function (server) {
    list.appendChild(toolGroup(server, groups[server]));
  });
}

function toolGroup(server, group) {
  var enabled = group.filter(function (t) {
    return t.enabled !== false;
  }).length;
  var body = el("tbody");
  group.forEach(function (tool) {
    body.appendChild(toolRow(tool));
  });
  return el(
    "div",
    { class: "tool-group", testid: "tool-group-" + server },
    el("h2", {}, el("code", { text: server }), el("span", { class: "hint", text: enabled + " of " + group.length + " enabled" })),
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
  );
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
  var save = smallButton("Save", "tool-save-" + key);
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

export function initTools() {
  $("tools-refresh").addEventListener("click", loadTools);
}

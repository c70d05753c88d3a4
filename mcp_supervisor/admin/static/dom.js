/* DOM helpers. Every piece of server-provided text goes into the page through textContent or attribute
 * setters, never innerHTML. */

export function $(id) {
  return document.getElementById(id);
}

const PROPS = { checked: 1, value: 1, disabled: 1, hidden: 1, title: 1, type: 1, placeholder: 1, rows: 1, selected: 1 };

/* el("button", {class: "small", text: "Go", testid: "x", onclick: fn}, child, ...) */
export function el(tag, attrs) {
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

/* The small buttons of table rows: smallButton("Restart", "health-restart-x", fn) */
export function smallButton(text, testid, onclick, extraClass) {
  return el("button", { type: "button", class: "small" + (extraClass ? " " + extraClass : ""), text: text, testid: testid, onclick: onclick });
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

export function setText(node, text) {
  var value = text === null || text === undefined ? "" : String(text);
  if (node.textContent !== value) node.textContent = value;
}

export function showError(node, message) {
  if (!node) return;
  setText(node, message || "");
  node.hidden = !message;
}

function cssEscape(value) {
  if (window.CSS && CSS.escape) return CSS.escape(value);
  return String(value).replace(/["\\]/g, "\\$&");
}

/* The element under `root` with data-testid `testid`. */
export function byTestId(root, testid) {
  return root.querySelector('[data-testid="' + cssEscape(testid) + '"]');
}

/* The table row under `root` with data-key `key`. */
export function rowByKey(root, key) {
  return root.querySelector('tr[data-key="' + cssEscape(key) + '"]');
}

/* Runs `action`, then shows its error in `box`, or clears the box when it succeeded. */
export function showingErrors(box, action) {
  try {
    action();
    showError(box, "");
  } catch (err) {
    showError(box, err.message);
  }
}

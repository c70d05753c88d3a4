/* The sandbox fields of the Servers form (a stdio server's "sandbox" object in mcp_server.json).
 *
 * Same rule as the rest of the form: a field is written back only when the form's value differs from the
 * rendering of the entry's current value, so untouched values keep their exact form, and keys the form does not
 * show (a network policy object, fields of later versions) survive. The supervisor's loader checks the result.
 */

import { $ } from "./dom.js";
import { isObject } from "./entry.js";

const LISTS = ["readPaths", "writePaths"];
const NUMBERS = [
  { name: "memoryMb", integer: true, min: 8, rule: "a whole number of MB, at least 8" },
  { name: "pids", integer: true, min: 1, rule: "a whole number, at least 1" },
  { name: "cpus", integer: false, min: 0, rule: "a number of CPUs above 0 (e.g. 0.5)" },
];

/* Every input of the sandbox fieldset, for the form's change listeners. */
export const SANDBOX_INPUTS = ["sfs-enabled", "sfs-network"]
  .concat(LISTS.map(function (name) { return "sfs-" + name; }))
  .concat(NUMBERS.map(function (field) { return "sfs-" + field.name; }));

function policyOf(entry) {
  return isObject(entry.sandbox) ? entry.sandbox : {};
}

function networkOf(policy) {
  if (policy.network === false) return "off";
  return isObject(policy.network) ? "custom" : "on";
}

function renderList(value) {
  return Array.isArray(value) ? value.map(String).join("\n") : "";
}

function renderNumber(value) {
  return value === undefined || value === null ? "" : String(value);
}

export function fillSandbox(entry) {
  var policy = policyOf(entry);
  $("sfs-enabled").checked = policy.enabled !== false;
  var network = networkOf(policy);
  // "custom" (an allow-list or host ports) is edited in the JSON; the option exists only while the entry has one.
  $("sfs-network-custom").hidden = network !== "custom";
  $("sfs-network-custom").disabled = network !== "custom";
  $("sfs-network").value = network;
  LISTS.forEach(function (name) {
    $("sfs-" + name).value = renderList(policy[name]);
  });
  NUMBERS.forEach(function (field) {
    $("sfs-" + field.name).value = renderNumber(policy[field.name]);
  });
}

/* Back to the defaults (a switch to a remote type, where a sandbox means nothing). */
export function clearSandbox() {
  fillSandbox({});
}

function parseNumber(field, text) {
  var trimmed = text.trim();
  if (!trimmed) return undefined;
  var value = Number(trimmed);
  var valid = isFinite(value) && (field.integer ? Number.isInteger(value) && value >= field.min : value > field.min);
  if (!valid) throw new Error("Sandbox " + field.name + " must be " + field.rule + ": " + trimmed);
  return value;
}

function parseList(text) {
  var items = text
    .split(/\r?\n/)
    .map(function (line) { return line.trim(); })
    .filter(function (line) { return line !== ""; });
  return items.length ? items : undefined;
}

/* Apply the sandbox fields to `entry` (mutated). Throws an Error with a sentence on a malformed value. */
export function applySandbox(entry) {
  var policy = Object.assign({}, policyOf(entry));
  var changed = false;
  function put(name, value) {
    if (value === undefined) delete policy[name];
    else policy[name] = value;
    changed = true;
  }
  var enabled = $("sfs-enabled").checked;
  if (enabled !== (policy.enabled !== false)) put("enabled", enabled ? undefined : false);
  var network = $("sfs-network").value;
  if (network !== networkOf(policy)) put("network", network === "off" ? false : undefined);
  LISTS.forEach(function (name) {
    var text = $("sfs-" + name).value;
    if (text !== renderList(policy[name])) put(name, parseList(text));
  });
  NUMBERS.forEach(function (field) {
    var text = $("sfs-" + field.name).value;
    if (text.trim() !== renderNumber(policy[field.name])) put(field.name, parseNumber(field, text));
  });
  if (!changed) return entry;
  if (Object.keys(policy).length) entry.sandbox = policy;
  else delete entry.sandbox;
  return entry;
}

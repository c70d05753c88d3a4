/* Reading a server's raw mcp_server.json entry the way the gateway does. */

export function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

export function transportOf(entry) {
  if (!isObject(entry)) return "stdio";
  var raw = entry.type !== undefined ? entry.type : entry.transport;
  if (typeof raw === "string" && raw) return raw;
  if (entry.command) return "stdio";
  if (typeof entry.url === "string" && entry.url) return /\/sse\/?$/.test(entry.url) ? "sse" : "http";
  return "stdio";
}

export function isActive(entry) {
  if (!isObject(entry)) return true;
  var a = entry.active;
  return !(a === false || (typeof a === "string" && a.trim().toLowerCase() === "false"));
}

export function hasInstallCommands(entry) {
  return isObject(entry) && Array.isArray(entry.installCommands) && entry.installCommands.length > 0;
}

/* The Terminal page: a shell on the server through POST /admin/terminal/start and its WebSocket; keys and
 * pastes go in as input, the output is drawn by terminal-screen.js. */

import { ApiError, api, BASE, goLogin, parseJson, path } from "./api.js";
import { $, setText } from "./dom.js";
import { toast } from "./notices.js";
import { state } from "./state.js";
import { measureScreen, renderScreen, resetScreen, screen, writeScreen } from "./terminal-screen.js";

const term = {
  id: null,
  ws: null,
  exited: false,
};

/* Sizes the screen to the page; true when the size changed. */
function fit() {
  var size = measureScreen();
  var changed = size.cols !== screen.cols || size.rows !== screen.rows;
  screen.cols = size.cols;
  screen.rows = size.rows;
  return changed;
}

function send(message) {
  if (term.ws && term.ws.readyState === WebSocket.OPEN) term.ws.send(JSON.stringify(message));
}

function sendSize() {
  send({ type: "resize", cols: screen.cols, rows: screen.rows });
}

function showStatus(text) {
  setText($("terminal-status"), text);
}

function setButtons() {
  var open = !!term.id;
  $("terminal-start").disabled = open;
  $("terminal-close").disabled = !open;
  document.body.setAttribute("data-terminal", term.ws && term.ws.readyState === WebSocket.OPEN ? "open" : open ? "starting" : "closed");
}

function startTerminal() {
  if (term.id) return;
  fit();
  term.exited = false;
  resetScreen();
  showStatus("Starting…");
  $("terminal-start").disabled = true;
  api("POST", BASE + "/terminal/start", { cols: screen.cols, rows: screen.rows })
    .then(function (data) {
      if (!data.termId) throw new ApiError(0, "The gateway did not return a terminal id.");
      term.id = data.termId;
      openSocket(term.id);
    })
    .catch(function (err) {
      showStatus(err.message);
      setButtons();
    });
}

function openSocket(id) {
  var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
  var ws = new WebSocket(scheme + window.location.host + path("/terminal/", id, "/ws"));
  term.ws = ws;
  setButtons();
  ws.onopen = function () {
    showStatus("Connected (terminal " + id + ").");
    setButtons();
    fit();
    sendSize();
    $("terminal-output").focus();
  };
  ws.onmessage = function (event) {
    var message = parseJson(event.data);
    if (!message) return;
    if (message.type === "output" && typeof message.data === "string") writeScreen(message.data);
    else if (message.type === "exit") {
      term.exited = true;
      writeScreen("\r\n[the shell exited with code " + message.code + "]\r\n");
      showStatus("The shell exited with code " + message.code + ".");
    }
  };
  ws.onclose = function (event) {
    if (event.code === 4401) goLogin(); // the admin session is gone
    if (term.ws !== ws) return;
    term.ws = null;
    term.id = null;
    if (!term.exited) showStatus("Disconnected" + (event.code && event.code !== 1000 ? " (code " + event.code + ")" : "") + ".");
    setButtons();
  };
}

function closeTerminal() {
  var id = term.id;
  var ws = term.ws;
  term.id = null;
  term.ws = null;
  if (ws) ws.close();
  setButtons();
  showStatus("Closed.");
  if (id) {
    api("DELETE", path("/terminal/", id)).catch(function (err) {
      if (err.status !== 404) toast(err.message, true);
    });
  }
}

const KEYS = {
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

/* The bytes a key press sends to the shell, or null when the browser keeps the key. */
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

export function initTerminal() {
  var pre = $("terminal-output");
  $("terminal-start").addEventListener("click", startTerminal);
  $("terminal-close").addEventListener("click", closeTerminal);
  pre.addEventListener("keydown", function (event) {
    if (!term.ws) return;
    var input = keyToInput(event);
    if (input === null) return;
    event.preventDefault();
    send({ type: "input", data: input });
  });
  pre.addEventListener("paste", function (event) {
    if (!term.ws) return;
    var text = (event.clipboardData || window.clipboardData).getData("text");
    if (text) {
      event.preventDefault();
      send({ type: "input", data: text.replace(/\r?\n/g, "\r") });
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
      if (!fit()) return;
      sendSize();
      renderScreen();
    }, 150);
  });
  renderScreen();
  setButtons();
}

/* The page was shown: an open terminal gets the keyboard. */
export function terminalShown() {
  if (term.ws) $("terminal-output").focus();
}

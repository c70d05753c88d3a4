/* The terminal's screen: a small line-based emulator drawn into <pre id="terminal-output">. Printable text is
 * drawn at the cursor; escape sequences are stripped, except the few that move the cursor or edit the line. */

import { $, clear, el } from "./dom.js";

const MAX_LINES = 5000;

/* cols / rows: the screen's size; the terminal module sets them from the page's measure. */
export const screen = {
  lines: [""],
  row: 0,
  col: 0,
  pending: "", // an escape sequence cut in two by the chunking of the output
  cols: 80,
  rows: 24,
  renderTimer: null,
};

export function resetScreen() {
  screen.lines = [""];
  screen.row = 0;
  screen.col = 0;
  screen.pending = "";
  renderScreen();
}

function screenTop() {
  return Math.max(0, screen.lines.length - screen.rows);
}

function ensureRow(row) {
  while (screen.lines.length <= row) screen.lines.push("");
}

function newline() {
  screen.row++;
  ensureRow(screen.row);
  if (screen.lines.length > MAX_LINES) {
    var drop = screen.lines.length - MAX_LINES;
    screen.lines.splice(0, drop);
    screen.row = Math.max(0, screen.row - drop);
  }
}

function put(ch) {
  if (screen.col >= screen.cols) {
    // deferred auto-wrap, as xterm does: the character after the last column starts the next line
    newline();
    screen.col = 0;
  }
  var line = screen.lines[screen.row];
  if (line.length < screen.col) line += " ".repeat(screen.col - line.length);
  screen.lines[screen.row] = line.slice(0, screen.col) + ch + line.slice(screen.col + 1);
  screen.col++;
}

function csi(params, final) {
  if (params.charAt(0) === "?" || params.charAt(0) === ">" || params.charAt(0) === "=") return; // modes: ignored
  var parts = params.split(";").map(function (p) {
    return p === "" ? NaN : parseInt(p, 10);
  });
  var n = isNaN(parts[0]) ? 1 : Math.max(1, parts[0]);
  var line = screen.lines[screen.row];
  switch (final) {
    case "K": {
      var mode = isNaN(parts[0]) ? 0 : parts[0];
      if (mode === 0) screen.lines[screen.row] = line.slice(0, screen.col);
      else if (mode === 1) screen.lines[screen.row] = " ".repeat(Math.min(screen.col, line.length) + 1) + line.slice(screen.col + 1);
      else screen.lines[screen.row] = "";
      break;
    }
    case "J": {
      var jmode = isNaN(parts[0]) ? 0 : parts[0];
      if (jmode === 2 || jmode === 3) {
        screen.lines = [""];
        screen.row = 0;
        screen.col = 0;
      } else if (jmode === 0) {
        screen.lines[screen.row] = line.slice(0, screen.col);
        screen.lines.length = screen.row + 1;
      }
      break;
    }
    case "H":
    case "f": {
      var top = screenTop();
      var r = isNaN(parts[0]) ? 1 : parts[0];
      var c = isNaN(parts[1]) ? 1 : parts[1];
      screen.row = top + Math.max(0, r - 1);
      screen.col = Math.max(0, c - 1);
      ensureRow(screen.row);
      break;
    }
    case "A":
      screen.row = Math.max(screenTop(), screen.row - n);
      break;
    case "B":
      screen.row += n;
      ensureRow(screen.row);
      break;
    case "C":
      screen.col = Math.min(screen.cols - 1, screen.col + n);
      break;
    case "D":
      screen.col = Math.max(0, Math.min(screen.col, screen.cols) - n);
      break;
    case "G":
      screen.col = Math.max(0, (isNaN(parts[0]) ? 1 : parts[0]) - 1);
      break;
    case "P":
      screen.lines[screen.row] = line.slice(0, screen.col) + line.slice(screen.col + n);
      break;
    case "@":
      if (screen.col < line.length) screen.lines[screen.row] = line.slice(0, screen.col) + " ".repeat(n) + line.slice(screen.col);
      break;
    case "X":
      if (screen.col < line.length) screen.lines[screen.row] = line.slice(0, screen.col) + " ".repeat(n) + line.slice(screen.col + n);
      break;
    default:
      break; // colours (m) and everything else: dropped
  }
}

/* Feed PTY output: printable text is drawn at the cursor; \r, \n, \b, \t move it; escape sequences are
 * stripped (the few that edit the line, such as erase-to-end-of-line, are applied). */
export function writeScreen(data) {
  var s = screen.pending + data;
  screen.pending = "";
  var i = 0;
  while (i < s.length) {
    var ch = s.charAt(i);
    if (ch === "\x1b") {
      if (i + 1 >= s.length) {
        screen.pending = s.slice(i);
        break;
      }
      var next = s.charAt(i + 1);
      if (next === "[") {
        var j = i + 2;
        while (j < s.length && s.charCodeAt(j) >= 0x30 && s.charCodeAt(j) <= 0x3f) j++;
        while (j < s.length && s.charCodeAt(j) >= 0x20 && s.charCodeAt(j) <= 0x2f) j++;
        if (j >= s.length) {
          screen.pending = s.slice(i);
          break;
        }
        csi(s.slice(i + 2, j), s.charAt(j));
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
          screen.pending = s.length - i < 4096 ? s.slice(i) : "";
          break;
        }
        i = end;
        continue;
      }
      if ("()*+#%".indexOf(next) >= 0) {
        if (i + 2 >= s.length) {
          screen.pending = s.slice(i);
          break;
        }
        i += 3;
        continue;
      }
      i += 2; // ESC 7, ESC 8, ESC =, ESC >, ESC M ...
      continue;
    }
    if (ch === "\r") screen.col = 0;
    else if (ch === "\n") newline();
    else if (ch === "\b") screen.col = Math.max(0, Math.min(screen.col, screen.cols) - 1);
    else if (ch === "\t") {
      var stop = Math.min(screen.cols - 1, (Math.floor(screen.col / 8) + 1) * 8);
      while (screen.col < stop) put(" ");
    } else if (ch.charCodeAt(0) < 0x20 || ch === "\x7f") {
      // other control characters (BEL, SO, SI ...): nothing to draw
    } else put(ch);
    i++;
  }
  scheduleRender();
}

function scheduleRender() {
  if (screen.renderTimer) return;
  screen.renderTimer = setTimeout(function () {
    screen.renderTimer = null;
    renderScreen();
  }, 16);
}

export function renderScreen() {
  var pre = $("terminal-output");
  if (!pre) return;
  var stick = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 30;
  clear(pre);
  var before = screen.lines.slice(0, screen.row);
  var line = screen.lines[screen.row] || "";
  var after = screen.lines.slice(screen.row + 1);
  var head = before.length ? before.join("\n") + "\n" : "";
  var col = Math.min(screen.col, screen.cols - 1);
  if (line.length < col) line += " ".repeat(col - line.length);
  pre.appendChild(document.createTextNode(head + line.slice(0, col)));
  pre.appendChild(el("span", { class: "cursor", text: line.charAt(col) || " " }));
  pre.appendChild(document.createTextNode(line.slice(col + 1) + (after.length ? "\n" + after.join("\n") : "")));
  if (stick) pre.scrollTop = pre.scrollHeight;
}

/* The screen's size in characters, from the <pre>'s size and the measure span's character size. */
export function measureScreen() {
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

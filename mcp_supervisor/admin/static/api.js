/* The admin API client: fetch + JSON, the CSRF token, and "a 401 means log in again".
 *
 * The API contract is docs/admin.md. Non-GET requests carry X-CSRF-Token; any 401 sends the browser to the
 * login page.
 */

export const BASE = "/admin";

export function ApiError(status, message, data) {
  this.status = status;
  this.message = message;
  this.data = data;
}
ApiError.prototype = Object.create(Error.prototype);
ApiError.prototype.name = "ApiError";

let csrfToken = null;
let leaving = false;

export function setCsrfToken(token) {
  csrfToken = token || null;
}

export function goLogin() {
  if (leaving) return;
  leaving = true;
  window.location.assign(BASE + "/login");
}

/* JSON.parse that answers null for empty or malformed text. */
export function parseJson(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch (e) {
    return null;
  }
}

/* A refused request's message, with the wait a 429 asks for. */
export function withRetryAfter(message, response) {
  var retry = response.headers.get("Retry-After");
  if (response.status === 429 && retry) message += " Try again in " + retry + " s.";
  return message;
}

/* The message of a request that got no answer at all (fetch rejected). */
export function noAnswer(err) {
  return "The gateway did not answer (" + (err && err.message ? err.message : err) + ").";
}

/* fetch + JSON, with the CSRF header on every non-GET request; a 401 means "log in again". */
export function api(method, path, body) {
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
        var data = parseJson(text);
        if (response.status === 401) {
          goLogin();
          throw new ApiError(401, (data && data.error) || "Not logged in.", data);
        }
        if (!response.ok) {
          // errors are {error}; a refused supervisor command answers {success: false, message}
          var message = (data && (data.error || data.message)) || "The gateway answered HTTP " + response.status + ".";
          throw new ApiError(response.status, withRetryAfter(message, response), data);
        }
        return data || {};
      });
    },
    function (err) {
      throw new ApiError(0, noAnswer(err));
    }
  );
}

/* An API path with a key in it: path("/servers/", key, "/restart"). */
export function path(prefix, key, suffix) {
  return BASE + prefix + encodeURIComponent(key) + (suffix || "");
}

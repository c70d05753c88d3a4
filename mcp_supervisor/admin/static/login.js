/* The login page (login.html): POST /admin/login, then the app; a refusal is shown in the form. */

import { BASE, noAnswer, parseJson, withRetryAfter } from "./api.js";
import { $, showError } from "./dom.js";

function initLogin() {
  var form = $("login-form");
  var errorNode = $("login-error");
  var button = $("login-submit");
  var password = $("login-password");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    showError(errorNode, "");
    button.disabled = true;
    var body = { username: $("login-username").value, password: password.value };
    // Not api(): its 401 means "log in again", while here it is a wrong password, to show.
    fetch(BASE + "/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    })
      .then(function (response) {
        return response.text().then(function (text) {
          var data = parseJson(text);
          if (response.ok && data && data.success) {
            window.location.assign(BASE + "/");
            return;
          }
          var message = (data && data.error) || "Sign-in failed (HTTP " + response.status + ").";
          showError(errorNode, withRetryAfter(message, response));
          password.select();
        });
      })
      .catch(function (err) {
        showError(errorNode, noAnswer(err));
      })
      .then(function () {
        button.disabled = false;
      });
  });
}

initLogin(); // a module runs once the document is parsed

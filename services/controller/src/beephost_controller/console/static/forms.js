// Forms that ask first (data-confirm), and the connection details revealed on a
// click (data-reveal): fetched by a POST with the session's CSRF token, shown once,
// never put in a URL or kept in the page after "Hide".
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");

  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  }

  function row(list, label, value) {
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    const code = document.createElement("code");
    code.textContent = value;
    dd.append(code);
    list.append(dt, dd);
    return code;
  }

  for (const form of document.querySelectorAll("form[data-reveal]")) {
    const box = document.getElementById("connection");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const response = await fetch(form.action, {
        method: "POST",
        headers: { Accept: "application/json", "X-CSRF-Token": csrf },
        credentials: "same-origin",
        cache: "no-store",
      });
      box.replaceChildren();
      box.hidden = false;
      if (!response.ok) {
        const failure = await response.json().catch(() => null);
        box.textContent = failure && failure.error ? failure.error.message : "Refused (" + response.status + ").";
        return;
      }
      const details = await response.json();
      const list = document.createElement("dl");
      list.className = "facts";
      row(list, "URL", details.url);
      row(list, "Token", details.token || "(none)").className = "token";
      const hide = document.createElement("button");
      hide.type = "button";
      hide.textContent = "Hide";
      hide.addEventListener("click", () => {
        box.replaceChildren();
        box.hidden = true;
        form.querySelector("button").focus();
      });
      box.append(list, hide);
      hide.focus();
    });
  }
})();

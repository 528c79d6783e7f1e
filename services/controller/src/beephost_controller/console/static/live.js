// The overview's live sections: poll /console/live/overview with the last ETag; a
// 304 changes nothing, a 200 replaces each section with the server's fragment.
"use strict";
(function () {
  const source = document.querySelector("[data-live-source]");
  if (!source) return;
  const url = source.getAttribute("data-live-source");
  const status = source.querySelector("[data-live-status]");
  const PERIOD = 2000;
  let etag = null;

  async function poll() {
    if (document.hidden) return;
    const headers = { Accept: "application/json" };
    if (etag) headers["If-None-Match"] = etag;
    let response;
    try {
      response = await fetch(url, { headers, credentials: "same-origin", cache: "no-store" });
    } catch (err) {
      if (status) status.textContent = "Offline: retrying.";
      return;
    }
    if (response.status === 401) {
      window.location.assign("/console/sign-in?next=" + encodeURIComponent(window.location.pathname));
      return;
    }
    if (response.status === 304) return;
    if (!response.ok) {
      if (status) status.textContent = "Update failed (" + response.status + "): retrying.";
      return;
    }
    etag = response.headers.get("ETag");
    const body = await response.json();
    for (const [name, html] of Object.entries(body.sections)) {
      const target = document.querySelector('[data-live="' + name + '"]');
      // Server-rendered, autoescaped fragments of our own templates.
      if (target) target.innerHTML = html;
    }
    if (status) status.textContent = "";
    document.body.setAttribute("data-live-updated", String(Date.now()));
  }

  window.setInterval(poll, PERIOD);
  document.addEventListener("visibilitychange", poll);
})();

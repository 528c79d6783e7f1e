// A build's log as it is written: poll the job's log page after the last line seen,
// append the new lines, stop once the job has ended and every line is shown.
"use strict";
(function () {
  const log = document.querySelector("[data-job-log]");
  if (!log) return;
  const url = log.getAttribute("data-job-log");
  const badge = document.querySelector("[data-job-status]");
  let after = -1;

  async function poll() {
    let response;
    try {
      response = await fetch(url + "?after=" + after, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch (err) {
      window.setTimeout(poll, 2000);
      return;
    }
    if (!response.ok) {
      window.setTimeout(poll, 5000);
      return;
    }
    const page = await response.json();
    if (page.lines.length) {
      const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.append(document.createTextNode(page.lines.map((l) => l.line + "\n").join("")));
      if (atBottom) log.scrollTop = log.scrollHeight;
    }
    after = page.next;
    if (badge) {
      badge.textContent = page.job.status;
      badge.className = "status s-" + page.job.status;
    }
    const ended = page.job.status === "succeeded" || page.job.status === "failed";
    if (ended && page.lines.length === 0) {
      log.setAttribute("data-complete", "true");
      return;
    }
    window.setTimeout(poll, page.lines.length ? 100 : 1000);
  }

  poll();
})();

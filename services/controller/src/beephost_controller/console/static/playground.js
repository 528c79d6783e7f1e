// The playground: runs code through /console/playground/run and shows its events as
// they arrive. HTML outputs go into a sandboxed frame (no scripts, no same origin,
// a policy of its own), so what the code made can never touch the console's page.
"use strict";
(function () {
  const form = document.getElementById("playground");
  if (!form) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  const out = document.getElementById("pg-output");
  const state = document.getElementById("pg-state");
  const runButton = document.getElementById("pg-run");
  const stopButton = document.getElementById("pg-interrupt");
  const FRAME_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";
  // One session per tab: an id of this tab's own, kept across its reloads only.
  let tab = window.sessionStorage.getItem("beephost-tab");
  if (!tab) {
    tab = window.crypto.randomUUID();
    window.sessionStorage.setItem("beephost-tab", tab);
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf },
      credentials: "same-origin",
      cache: "no-store",
      body: JSON.stringify(body),
    });
  }

  function textBlock(kind, text) {
    const last = out.lastElementChild;
    if (last && last.tagName === "PRE" && last.dataset.kind === kind) {
      last.append(document.createTextNode(text));
      return;
    }
    const pre = document.createElement("pre");
    pre.className = "out out-" + kind;
    pre.dataset.kind = kind;
    pre.textContent = text;
    out.append(pre);
  }

  function show(event) {
    if (event.kind === "stdout" || event.kind === "stderr" || event.kind === "error") {
      textBlock(event.kind, event.text);
    } else if (event.kind === "image") {
      const img = document.createElement("img");
      img.className = "out-image";
      img.alt = "An image the code made";
      img.src = "data:image/png;base64," + event.png;
      out.append(img);
    } else if (event.kind === "html") {
      const frame = document.createElement("iframe");
      frame.className = "out-html";
      frame.title = "An HTML output of the code";
      frame.setAttribute("sandbox", "");
      frame.setAttribute("referrerpolicy", "no-referrer");
      frame.srcdoc =
        '<!doctype html><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="' +
        FRAME_POLICY + '">' + event.html;
      out.append(frame);
    } else if (event.kind === "result" && event.text) {
      textBlock("result", event.text + "\n");
    }
  }

  form.addEventListener("submit", async (submitted) => {
    submitted.preventDefault();
    out.replaceChildren();
    runButton.disabled = true;
    stopButton.disabled = false;
    state.textContent = "Running…";
    const backend = form.elements.backend.value;
    let ended = "Done.";
    try {
      const response = await post(form.dataset.run, { backend, tab, code: form.elements.code.value });
      if (!response.ok) {
        const failure = await response.json().catch(() => null);
        textBlock("error", failure && failure.error ? failure.error.message : "Refused (" + response.status + ").");
        ended = "Failed.";
      } else {
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffered = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffered += decoder.decode(value, { stream: true });
          let newline;
          while ((newline = buffered.indexOf("\n")) >= 0) {
            const event = JSON.parse(buffered.slice(0, newline));
            buffered = buffered.slice(newline + 1);
            if (event.kind === "error") ended = "Failed.";
            show(event);
          }
        }
      }
    } catch (err) {
      textBlock("error", "The connection failed: " + err);
      ended = "Failed.";
    }
    runButton.disabled = false;
    stopButton.disabled = true;
    state.textContent = ended;
    out.setAttribute("data-finished", String(Date.now()));
  });

  stopButton.addEventListener("click", async () => {
    state.textContent = "Interrupting…";
    await post(form.dataset.interrupt, { backend: form.elements.backend.value, tab });
  });
})();

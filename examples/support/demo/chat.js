// The demo web chat: starts a conversation, shows what the bot and the
// gateway send into it (polled from the demo server), sends what the
// customer types. Links in messages open in a new tab; a wallet link
// (`/w/`) is named for what it does.
"use strict";
(function () {
  const log = document.getElementById("log");
  const form = document.getElementById("composer");
  const input = document.getElementById("text");
  const error = document.getElementById("error");
  let conversation = null;
  let shown = 0;

  function show(line) {
    const li = document.createElement("li");
    li.className = line.from;
    const parts = line.text.split(/(https?:\/\/\S+)/);
    for (const p of parts) {
      if (/^https?:\/\//.test(p)) {
        const a = document.createElement("a");
        a.href = p;
        a.textContent = /\/w\//.test(p) ? "Confirm with your wallet" : "Sign in securely";
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        li.appendChild(a);
      } else if (p) {
        li.appendChild(document.createTextNode(p));
      }
    }
    log.appendChild(li);
    li.scrollIntoView({ block: "end" });
  }

  async function poll() {
    try {
      const q = new URLSearchParams({ conversation, after: String(shown) });
      const res = await fetch("/api/messages?" + q.toString(), { cache: "no-store" });
      if (res.ok) {
        const body = await res.json();
        for (const line of body.lines) { show(line); shown++; }
        error.hidden = true;
      }
    } catch (e) {
      error.textContent = "The chat server cannot be reached; retrying…";
      error.hidden = false;
    }
    setTimeout(poll, 400);
  }

  async function say(text) {
    if (!text || !conversation) return;
    await fetch("/api/say", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ conversation, text }),
    });
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    input.value = "";
    say(text);
  });
  for (const b of document.querySelectorAll("[data-say]")) {
    b.addEventListener("click", () => say(b.dataset.say));
  }

  (async function start() {
    try {
      const res = await fetch("/api/start", { method: "POST", cache: "no-store" });
      if (!res.ok) throw new Error("HTTP " + res.status);
      conversation = (await res.json()).conversation;
      document.body.dataset.conversation = conversation;
      poll();
      input.focus();
    } catch (e) {
      error.textContent = "The chat could not start: is the gateway running?";
      error.hidden = false;
      setTimeout(start, 2000);
    }
  })();
})();

// The demo web chat: starts a conversation, shows what the bot and the
// gateway send into it (polled from the demo server), sends what the
// customer types. Links in messages open in a new tab, each named for
// what it does (a wallet link `/w/`, a code page `/c/`, else a sign-in
// link). The page speaks the conversation's one language, and once the
// customer is verified it offers no way to verify any more.
"use strict";
(function () {
  const log = document.getElementById("log");
  const form = document.getElementById("composer");
  const input = document.getElementById("text");
  const error = document.getElementById("error");
  const suggestions = document.getElementById("suggestions");
  const WORDS = {
    en: {
      "sign-in": "Sign in", code: "Send me a code", page: "Type the code on a page",
      wallet: "Prove it with your wallet", language: "Español",
      "link-wallet": "Confirm with your wallet", "link-page": "Type the code on a page",
      "link-sign-in": "Sign in securely", placeholder: "Type a message or the code",
      send: "Send", message: "Your message", conversation: "Conversation", suggestions: "Suggestions",
    },
    es: {
      "sign-in": "Iniciar sesión", code: "Envíame un código", page: "Escribir el código en una página",
      wallet: "Demostrarlo con mi cartera", language: "English",
      "link-wallet": "Confirmar con tu cartera", "link-page": "Escribir el código en una página",
      "link-sign-in": "Iniciar sesión de forma segura", placeholder: "Escribe un mensaje o el código",
      send: "Enviar", message: "Tu mensaje", conversation: "Conversación", suggestions: "Sugerencias",
    },
  };
  let conversation = null;
  let shown = 0;
  let lang = "en";

  function words() { return WORDS[lang] || WORDS.en; }

  // The page in language `to`: its suggestions (and what they say), the
  // field and its button.
  function speak(to) {
    if (to === lang || !WORDS[to]) return;
    lang = to;
    const w = words();
    document.documentElement.lang = lang;
    for (const b of suggestions.querySelectorAll("[data-action]")) {
      b.textContent = w[b.dataset.action];
      b.dataset.say = w[b.dataset.action];
      if (b.dataset.action === "language") b.lang = lang === "en" ? "es" : "en";
    }
    input.placeholder = w.placeholder;
    document.querySelector("label[for=text]").textContent = w.message;
    form.querySelector("button[type=submit]").textContent = w.send;
    log.setAttribute("aria-label", w.conversation);
    suggestions.setAttribute("aria-label", w.suggestions);
  }

  // Verified: only the language stays on offer.
  function verified() {
    for (const b of suggestions.querySelectorAll("[data-action]")) {
      b.hidden = b.dataset.action !== "language";
    }
  }

  function linkName(url) {
    if (/\/w\//.test(url)) return words()["link-wallet"];
    if (/\/c\//.test(url)) return words()["link-page"];
    return words()["link-sign-in"];
  }

  function show(line) {
    const li = document.createElement("li");
    li.className = line.from;
    const parts = line.text.split(/(https?:\/\/\S+)/);
    for (const p of parts) {
      if (/^https?:\/\//.test(p)) {
        const a = document.createElement("a");
        a.href = p;
        a.textContent = linkName(p);
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
        speak(body.lang);
        for (const line of body.lines) { show(line); shown++; }
        if (body.verified) verified();
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

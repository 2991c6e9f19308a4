// chatgate agent console (docs/api.md#the-agent-console). Plain script, no dependencies.
//
// The agent's API key lives in sessionStorage (this tab only) and travels
// only in the Authorization header. The list comes from GET /v1/interactions
// (newest first, paged with next_cursor); live updates from GET /v1/events,
// read with fetch and a stream reader (an EventSource cannot send the
// header), parsed here, resumed with Last-Event-ID after a backoff. On an
// event the page re-reads that one interaction instead of guessing its state.
//
// Or the person signed in at the team's workforce provider
// (docs/console-sign-in.md): then no key is held; requests carry the
// HttpOnly session cookie (credentials: 'same-origin') and every change
// the Chatgate-Console: 1 header, which a cross-site form cannot send.
//
// Test hooks kept on purpose: the key field <input type=password
// name=api_key> in a <form>; one element per interaction with
// data-interaction-id and data-status, containing the conversation id as
// text and a check mark when authenticated.
"use strict";

(function () {
  const KEY = "chatgate.console.api_key";
  const PAGE_SIZE = 25;
  const $ = (id) => document.getElementById(id);
  const ui = {
    keyForm: $("key-form"), keyInput: $("api_key"), board: $("board"), list: $("list"),
    more: $("more"), empty: $("empty"), message: $("message"), live: $("live"),
    forget: $("forget"), filters: $("filters"), status: $("filter-status"),
    channel: $("filter-channel"), channels: $("channels"), template: $("row-template"),
    signIns: $("sign-ins"), signInLinks: $("sign-in-links"), who: $("who"),
  };

  let key = null;          // the API key, while signed in with one
  let session = null;      // {team, sub, name, role} while signed in as a person
  let cursor = null;       // next_cursor of the last page read
  let stream = null;       // AbortController of the event stream
  let lastEventId = null;  // for Last-Event-ID on reconnect
  let generation = 0;      // bumps on sign-out / filter change, to drop stale answers
  const seenChannels = new Set();
  let asksApp = false;     // an admin key of a team with approval in the app

  // ---- API --------------------------------------------------------------

  class Problem extends Error {
    constructor(status, body) {
      super((body && (body.detail || body.title)) || ("HTTP " + status));
      this.status = status;
      this.code = body && body.code;
    }
  }

  // The request's credentials: the key in Authorization, or the session
  // cookie with Chatgate-Console: 1 on a change.
  function credentials(method, headers) {
    if (session) {
      if (method !== "GET") headers["Chatgate-Console"] = "1";
      return "same-origin";
    }
    headers.Authorization = "Bearer " + key;
    return "omit";
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const creds = credentials(method, headers);
    const init = { method, headers, cache: "no-store", credentials: creds, referrerPolicy: "no-referrer" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new Problem(0, { detail: "The gateway cannot be reached." });
    }
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
    if (!res.ok) {
      const p = new Problem(res.status, json);
      if (res.status === 401) refused(p);
      throw p;
    }
    return json;
  }

  // ---- Sign in / out ------------------------------------------------------

  function showMessage(text) {
    ui.message.textContent = text;
    ui.message.hidden = !text;
  }

  // A wrong, revoked or under-privileged key, or an ended session: say so
  // and ask again.
  function refused(problem) {
    const person = session !== null;
    signOut();
    showMessage(person
      ? "Your console session has ended: sign in again."
      : "The API key was refused: " + problem.message);
  }

  function signOut() {
    generation++;
    key = null;
    session = null;
    ui.who.hidden = true;
    ui.signIns.hidden = !ui.signInLinks.querySelector("a");
    ui.forget.textContent = "Forget key";
    sessionStorage.removeItem(KEY);
    if (stream) stream.abort();
    stream = null;
    lastEventId = null;
    ui.board.hidden = true;
    ui.forget.hidden = true;
    ui.keyForm.hidden = false;
    ui.list.replaceChildren();
    setLive("closed", "not connected");
  }

  async function signIn(candidate) {
    key = candidate;
    showMessage("");
    try {
      await loadFirstPage();
    } catch (e) {
      if (e.status === 403) {
        refused(e);
      } else if (e.status !== 401) {
        showMessage(e.message);
      }
      return;
    }
    asksApp = await mayAskApp();
    sessionStorage.setItem(KEY, candidate);
    ui.keyForm.hidden = true;
    ui.signIns.hidden = true;
    ui.keyInput.value = "";
    ui.board.hidden = false;
    ui.forget.hidden = false;
    connect(generation, 0);
  }

  // The person signed in at the workforce provider, if the cookie names
  // a live session: the board works from it.
  async function resumeSession() {
    let me = null;
    try {
      const res = await fetch("/console/session", {
        headers: { Accept: "application/json" }, cache: "no-store",
        credentials: "same-origin", referrerPolicy: "no-referrer",
      });
      if (res.ok) me = await res.json();
    } catch (e) {
      me = null;
    }
    if (!me) return false;
    session = me;
    key = null;
    try {
      await loadFirstPage();
    } catch (e) {
      return false;
    }
    asksApp = false; // a person's session reaches no bot endpoint
    ui.who.textContent = "Signed in as " + (me.name || me.sub) + " (" + me.role + ", " + me.team + ")";
    ui.who.hidden = false;
    ui.forget.textContent = "Sign out";
    ui.keyForm.hidden = true;
    ui.signIns.hidden = true;
    ui.board.hidden = false;
    ui.forget.hidden = false;
    connect(generation, 0);
    return true;
  }

  // Ends the person's session at the gateway, then here.
  async function endSession() {
    try {
      await fetch("/console/sign-out", {
        method: "POST", headers: { "Chatgate-Console": "1" }, cache: "no-store",
        credentials: "same-origin", referrerPolicy: "no-referrer",
      });
    } catch (e) {
      // Signed out here regardless; the session ends at its idle limit.
    }
    signOut();
    showMessage("Signed out.");
  }

  // Whether this key may start an app challenge on this team: a start on
  // an interaction that cannot exist changes nothing, and answers 403 to
  // a key whose role may not start challenges, 422 to a team without
  // approval in the app, 404 to an admin key of a team with it
  // (docs/decisions/0080-app-approval-in-the-console.md).
  async function mayAskApp() {
    try {
      await api("POST", "/v1/interactions/00000000-0000-7000-8000-000000000000/challenges", { method: "app" });
    } catch (e) {
      return e.status === 404;
    }
    return false;
  }

  ui.keyForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const k = ui.keyInput.value.trim();
    if (k) signIn(k);
  });
  ui.forget.addEventListener("click", () => {
    if (session) { endSession(); return; }
    signOut(); showMessage(""); ui.keyInput.focus();
  });

  // ---- The list ---------------------------------------------------------------

  function filters() {
    return { status: ui.status.value, channel: ui.channel.value.trim() };
  }

  function matches(it) {
    const f = filters();
    return (!f.status || it.status === f.status) && (!f.channel || it.channel === f.channel);
  }

  function listPath(after) {
    const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
    const f = filters();
    if (f.status) q.set("status", f.status);
    if (f.channel) q.set("channel", f.channel);
    if (after) q.set("cursor", after);
    return "/v1/interactions?" + q.toString();
  }

  async function loadPage(after) {
    const mine = generation;
    const page = await api("GET", listPath(after));
    if (mine !== generation) return;
    for (const it of page.items || []) upsert(it, false);
    cursor = page.next_cursor || null;
    ui.more.hidden = !cursor;
    ui.empty.hidden = ui.list.children.length > 0;
  }

  async function loadFirstPage() {
    ui.list.replaceChildren();
    cursor = null;
    await loadPage(null);
  }

  ui.more.addEventListener("click", async () => {
    ui.more.disabled = true;
    try { await loadPage(cursor); } catch (e) { if (e.status !== 401) showMessage(e.message); }
    ui.more.disabled = false;
  });

  ui.filters.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showMessage("");
    try { await loadFirstPage(); } catch (e) { if (e.status !== 401) showMessage(e.message); }
  });
  ui.status.addEventListener("change", () => ui.filters.requestSubmit());

  function rowOf(id) {
    for (const li of ui.list.children) if (li.dataset.interactionId === id) return li;
    return null;
  }

  // Shows `it`; a new one goes where its creation time puts it (newest first).
  function upsert(it, live) {
    let li = rowOf(it.id);
    if (!matches(it)) {
      if (li && live) li.remove();
      ui.empty.hidden = ui.list.children.length > 0;
      return;
    }
    if (!li) {
      li = ui.template.content.firstElementChild.cloneNode(true);
      li.dataset.interactionId = it.id;
      li.dataset.createdAt = it.created_at || "";
      wire(li);
      let before = null;
      if (live) {
        for (const other of ui.list.children) {
          if ((other.dataset.createdAt || "") < li.dataset.createdAt
              || ((other.dataset.createdAt || "") === li.dataset.createdAt && other.dataset.interactionId < it.id)) {
            before = other;
            break;
          }
        }
      }
      ui.list.insertBefore(li, before);
    }
    render(li, it);
    ui.empty.hidden = true;
    if (it.channel && !seenChannels.has(it.channel)) {
      seenChannels.add(it.channel);
      const o = document.createElement("option");
      o.value = it.channel;
      ui.channels.appendChild(o);
    }
  }

  function customerText(it) {
    const c = it.customer || {};
    const name = c.name || c.id || "";
    const ref = it.customer_ref || "";
    if (name && ref && name !== ref) return name + " (" + ref + ")";
    return name || ref || "—";
  }

  function render(li, it) {
    li.dataset.status = it.status;
    li.dataset.subject = it.customer_ref || ("interaction:" + it.id);
    li._it = it;
    const authed = it.status === "authenticated";
    const mark = li.querySelector(".mark");
    mark.textContent = authed ? "✓" : "";
    li.querySelector(".conv").textContent = it.conversation_id;
    li.querySelector(".status").textContent = it.status;
    li.querySelector(".channel").textContent = it.channel;
    // The conversation's language, and the tag asked when it differs.
    const asked = it.requested_locale && it.requested_locale !== it.locale ? " (" + it.requested_locale + ")" : "";
    li.querySelector(".locale").textContent = (it.locale || "—") + asked;
    li.querySelector(".customer").textContent = customerText(it);
    li.querySelector(".method").textContent = it.method || "—";
    // Recognized is not authenticated: no check mark, its own words.
    const known = it.recognized;
    const recognized = li.querySelector(".recognized");
    recognized.hidden = !known;
    recognized.textContent = known ? "recognized as " + known.customer_id : "";
    li.querySelector(".forget").hidden = !known;
    const until = authed ? it.expires_at
      : (it.open_challenge ? it.open_challenge.expires_at : (it.status === "locked" ? it.locked_until : null));
    const left = li.querySelector(".left");
    left.dataset.until = until || "";
    tick(left);
    li.setAttribute("aria-label", "Conversation " + it.conversation_id + ", " + it.status);
    const ch = it.open_challenge;
    deliveryMark(li.querySelector(".delivery"), ch);
    ladderSteps(li, ch);
    li.querySelector(".reveal").hidden = !(ch && ch.method === "otp");
    // An open app challenge: the code the customer's app shows (agent reads
    // carry it; a row from the list is read once more to get it).
    const app = ch && ch.method === "app" ? ch : null;
    li.querySelector(".binding-fact").hidden = !(app && app.binding_code);
    li.querySelector(".binding").textContent = (app && app.binding_code) || "";
    if (app && !app.binding_code && li._bindingRead !== app.challenge_id) {
      li._bindingRead = app.challenge_id;
      refresh(it.id);
    }
    li.querySelector(".ask-app").hidden = !(asksApp && it.customer_ref && !authed && !app
      && it.status !== "locked" && it.status !== "banned");
    li.querySelector(".logout").hidden = !(authed || it.status === "pending" || it.status === "expired");
    li.querySelector(".unlock").hidden = !(it.status === "locked" || it.status === "banned");
  }

  // How far the open challenge's message got, as its provider reported
  // (docs/receipts.md): nothing until it is sent.
  const DELIVERY = {
    sent: ["sent", "The provider sent the code on"],
    delivered: ["✔ delivered", "The code reached the customer's phone"],
    read: ["✔✔ read", "The customer opened the code"],
    failed: ["✗ not delivered", "The provider could not deliver the code: offer another way"],
  };

  function deliveryMark(el, ch) {
    const status = ch && ch.delivery_status;
    const shown = status && DELIVERY[status];
    el.hidden = !shown;
    el.dataset.delivery = status || "";
    el.textContent = shown ? shown[0] : "";
    el.title = shown ? shown[1] : "";
  }

  // A delivery ladder's steps (docs/api.md#delivery-ladder): where the code
  // went, how far each message got, and the step that has it now.
  const STEP_MARK = { delivered: " ✔", read: " ✔✔", failed: " ✗" };

  function ladderSteps(li, ch) {
    const steps = (ch && ch.ladder) || [];
    const fact = li.querySelector(".ladder-fact");
    const dd = li.querySelector(".ladder");
    fact.hidden = steps.length === 0;
    const parts = [];
    steps.forEach((s, i) => {
      if (i > 0) parts.push(document.createTextNode(" → "));
      const el = document.createElement(s.step === "current" ? "strong" : "span");
      el.className = "step";
      el.dataset.step = s.step;
      el.textContent = s.channel + (STEP_MARK[s.delivery_status] || "");
      el.title = s.step === "current" ? "The code is here now"
        : s.step === "left" ? "Sent here before; the code moved on"
        : s.step === "passed" ? "Skipped" : "Next, if this one does not deliver";
      parts.push(el);
    });
    dd.replaceChildren(...parts);
  }

  function note(li, text, kind) {
    const n = li.querySelector(".note");
    n.dataset.kind = kind || "";
    n.replaceChildren(document.createTextNode(text));
    return n;
  }

  async function act(li, button, work) {
    button.disabled = true;
    try {
      await work();
    } catch (e) {
      if (e.status !== 401) note(li, e.message, "error");
    }
    button.disabled = false;
  }

  function wire(li) {
    const id = () => li.dataset.interactionId;
    li.querySelector(".reveal").addEventListener("click", (ev) => act(li, ev.currentTarget, async () => {
      const ch = li._it && li._it.open_challenge;
      if (!ch) return;
      const r = await api("GET", "/v1/interactions/" + encodeURIComponent(id())
        + "/challenges/" + encodeURIComponent(ch.challenge_id) + "/code");
      const n = note(li, "Code: ", "");
      const c = document.createElement("span");
      c.className = "code";
      c.textContent = r.code;
      n.appendChild(c);
    }));
    li.querySelector(".ask-app").addEventListener("click", (ev) => act(li, ev.currentTarget, async () => {
      const c = await api("POST", "/v1/interactions/" + encodeURIComponent(id()) + "/challenges", { method: "app" });
      const n = note(li, "Asked in the app; it shows ", "");
      const b = document.createElement("span");
      b.className = "code";
      b.textContent = c.binding_code;
      n.appendChild(b);
      await refresh(id());
    }));
    li.querySelector(".logout").addEventListener("click", (ev) => act(li, ev.currentTarget, async () => {
      const it = await api("POST", "/v1/interactions/" + encodeURIComponent(id()) + "/logout", {});
      upsert(it, true);
      note(li, "Logged out.", "");
    }));
    li.querySelector(".forget").addEventListener("click", (ev) => act(li, ev.currentTarget, async () => {
      const it = await api("POST", "/v1/interactions/" + encodeURIComponent(id()) + "/forget", {});
      upsert(it, true);
      note(li, "Conversation forgotten.", "");
    }));
    li.querySelector(".unlock").addEventListener("click", (ev) => act(li, ev.currentTarget, async () => {
      await api("POST", "/v1/subjects/" + encodeURIComponent(li.dataset.subject) + "/unlock", {});
      note(li, "Unlocked.", "");
      await refresh(id());
      if (!li.querySelector(".origins").hidden) await showOrigins(li);
    }));
    li.querySelector(".show-origins").addEventListener("click", (ev) => act(li, ev.currentTarget, async () => {
      const box = li.querySelector(".origins");
      if (!box.hidden) { box.hidden = true; box.replaceChildren(); return; }
      await showOrigins(li);
    }));
  }

  // ---- Origins of a subject (lockout scope "origin") ------------------------

  function subjectPath(li) {
    return "/v1/subjects/" + encodeURIComponent(li.dataset.subject);
  }

  function originText(o) {
    const parts = [o.familiar ? "familiar" : "unfamiliar", o.failures + " failures"];
    if (o.lockouts) parts.push(o.lockouts + " lockouts");
    if (o.banned) parts.push("banned");
    else if (o.locked_until) parts.push("locked until " + new Date(o.locked_until).toLocaleTimeString());
    return parts.join(" · ");
  }

  // Lists where the subject's attempts came from; an admin may unlock one.
  async function showOrigins(li) {
    const s = await api("GET", subjectPath(li));
    const box = li.querySelector(".origins");
    box.replaceChildren();
    box.hidden = false;
    if (!Array.isArray(s.origins)) {
      const item = document.createElement("li");
      item.textContent = "Lockouts count for the whole customer here (lockout.scope = \"subject\").";
      box.appendChild(item);
      return;
    }
    if (s.strangers_locked_until) {
      const item = document.createElement("li");
      item.className = "strangers";
      item.textContent = "Every unfamiliar origin is locked until "
        + new Date(s.strangers_locked_until).toLocaleTimeString() + ".";
      box.appendChild(item);
    }
    if (!s.origins.length) {
      const item = document.createElement("li");
      item.textContent = "No failures or successes on record.";
      box.appendChild(item);
    }
    for (const o of s.origins) {
      const item = document.createElement("li");
      item.dataset.origin = o.origin;
      item.dataset.locked = String(Boolean(o.banned || o.locked_until));
      const name = document.createElement("span");
      name.className = "origin-name";
      name.textContent = o.origin;
      const facts = document.createElement("span");
      facts.textContent = originText(o);
      item.append(name, facts);
      if (o.banned || o.locked_until) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "unlock-origin";
        b.textContent = "Unlock this origin";
        b.addEventListener("click", (ev) => act(li, ev.currentTarget, async () => {
          await api("POST", subjectPath(li) + "/unlock", { origin: o.origin });
          note(li, "Unlocked " + o.origin + ".", "");
          await refresh(li.dataset.interactionId);
          await showOrigins(li);
        }));
        item.appendChild(b);
      }
      box.appendChild(item);
    }
  }

  // ---- Time left --------------------------------------------------------------

  function tick(el) {
    const until = el.dataset.until;
    if (!until) { el.textContent = "—"; return; }
    const s = Math.max(0, Math.round((Date.parse(until) - Date.now()) / 1000));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const mm = h ? String(m).padStart(2, "0") : String(m);
    el.textContent = (h ? h + ":" : "") + mm + ":" + String(r).padStart(2, "0");
  }
  setInterval(() => { for (const el of ui.list.querySelectorAll(".left")) tick(el); }, 1000);

  // ---- Live updates -------------------------------------------------------------

  function setLive(state, text) {
    ui.live.dataset.state = state;
    ui.live.textContent = text;
    document.body.dataset.stream = state;
  }

  async function refresh(id) {
    const mine = generation;
    try {
      const it = await api("GET", "/v1/interactions/" + encodeURIComponent(id));
      if (mine === generation) upsert(it, true);
    } catch (e) {
      if (e.status === 404) { const li = rowOf(id); if (li) li.remove(); }
    }
  }

  function onEvent(type, data) {
    let ev;
    try { ev = JSON.parse(data); } catch (e) { return; }
    const d = ev.data || {};
    if (d.interaction && d.interaction.id) {
      refresh(d.interaction.id);
    } else if (d.subject && d.subject.subject) {
      for (const li of ui.list.children) {
        if (li.dataset.subject === d.subject.subject) refresh(li.dataset.interactionId);
      }
    }
  }

  // Reads the stream until it ends; parses Server-Sent Events by hand.
  async function readStream(res, mine) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "", id = null, type = "message", data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done || mine !== generation) return;
      buffer += decoder.decode(value, { stream: true });
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          if (id !== null) lastEventId = id;
          if (data.length) onEvent(type, data.join("\n"));
          id = null; type = "message"; data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        let v = i < 0 ? "" : line.slice(i + 1);
        if (v.startsWith(" ")) v = v.slice(1);
        if (field === "id") id = v;
        else if (field === "event") type = v;
        else if (field === "data") data.push(v);
      }
    }
  }

  // A stream without Last-Event-ID starts with what happens next: what
  // happened between the list read and the stream's start would never show.
  // So the newest page is read again once the stream is open (before its
  // events are read: each of those re-reads its interaction anyway).
  async function catchUp(mine) {
    try {
      const page = await api("GET", listPath(null));
      if (mine !== generation) return;
      for (const it of page.items || []) upsert(it, true);
    } catch (e) {
      // The stream's own events keep the list current; a refused key is
      // handled by api().
    }
  }

  async function connect(mine, failures) {
    if (mine !== generation || (!key && !session)) return;
    const ctl = new AbortController();
    stream = ctl;
    const headers = { Accept: "text/event-stream" };
    const creds = credentials("GET", headers);
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;
    setLive(failures ? "retrying" : "connecting", failures ? "reconnecting…" : "connecting…");
    try {
      const res = await fetch("/v1/events", {
        headers, signal: ctl.signal, cache: "no-store", credentials: creds, referrerPolicy: "no-referrer",
      });
      if (res.status === 401 || res.status === 403) {
        let body = null;
        try { body = await res.json(); } catch (e) { body = null; }
        refused(new Problem(res.status, body));
        return;
      }
      if (!res.ok || !res.body) throw new Error("HTTP " + res.status);
      setLive("open", "live");
      failures = 0;
      if (!lastEventId) await catchUp(mine);
      await readStream(res, mine);
    } catch (e) {
      if (ctl.signal.aborted || mine !== generation) return;
    }
    if (mine !== generation) return;
    // Backoff: 0.5 s, 1 s, 2 s, … at most 15 s.
    const delay = Math.min(15000, 500 * Math.pow(2, failures));
    setLive("retrying", "reconnecting…");
    setTimeout(() => connect(mine, failures + 1), delay);
  }

  // ---- Start ------------------------------------------------------------------------

  ui.signIns.hidden = !ui.signInLinks.querySelector("a");
  const saved = sessionStorage.getItem(KEY);
  if (saved) signIn(saved);
  else resumeSession().then((signedIn) => { if (!signedIn) ui.keyInput.focus(); });
})();

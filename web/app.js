/*
 * app.js: the web UI's behaviour. Talks only to this server's /web/api/
 * endpoints (serve/web.c): chats live on the server, the tab keeps their ids
 * in sessionStorage so a reload shows them again; answers stream over a
 * fetch() of text/event-stream; Stop aborts the fetch (the server then
 * cancels the generation).
 *
 * Rendering: user text is shown as plain text; model answers as Markdown
 * (marked) sanitized by DOMPurify, code highlighted by highlight.js, math by
 * KaTeX ($..$, $$..$$, \(..\), \[..\]), math cut out before Markdown so its
 * underscores survive. Nothing from a message ever reaches innerHTML without
 * DOMPurify.
 */
"use strict";

const $ = (id) => document.getElementById(id);
let CONFIG = { input_char_len_limit: 12000, blind_mode_input_char_len_limit: 30000 };
let MODELS = { models: [], arena: [] };

/* ---- rendering ---- */

function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

const MATH_RE = /(\$\$[\s\S]+?\$\$|\\\[[\s\S]+?\\\]|\\\([\s\S]+?\\\)|\$[^\s$](?:[^$\n]*?[^\s$])?\$)/g;

function renderMarkdown(el, text) {
  const math = [];
  // math out of the way of Markdown (code spans and blocks keep theirs)
  const parts = text.split(/(```[\s\S]*?(?:```|$)|`[^`\n]*`)/g);
  const protectedText = parts
    .map((p, i) => (i % 2 === 1 ? p : p.replace(MATH_RE, (m) => { math.push(m); return `@@FCMATH${math.length - 1}@@`; })))
    .join("");
  let html;
  try {
    html = window.marked ? marked.parse(protectedText, { mangle: false, headerIds: false }) : escapeHtml(protectedText);
  } catch (e) {
    html = escapeHtml(protectedText);
  }
  html = window.DOMPurify ? DOMPurify.sanitize(html, { USE_PROFILES: { html: true } }) : escapeHtml(text);
  // the math goes back escaped, as text for KaTeX's auto-render
  html = html.replace(/@@FCMATH(\d+)@@/g, (_, i) => escapeHtml(math[+i] || ""));
  el.innerHTML = html;
  el.querySelectorAll("pre code").forEach((b) => {
    try {
      if (window.hljs) (hljs.highlightElement || hljs.highlightBlock).call(hljs, b);
    } catch (e) { /* leave it plain */ }
  });
  if (window.renderMathInElement) {
    try {
      renderMathInElement(el, {
        delimiters: [
          { left: "$$", right: "$$", display: true },
          { left: "\\[", right: "\\]", display: true },
          { left: "\\(", right: "\\)", display: false },
          { left: "$", right: "$", display: false },
        ],
        throwOnError: false,
        ignoredTags: ["script", "noscript", "style", "textarea", "pre", "code"],
      });
    } catch (e) { /* leave the TeX as text */ }
  }
}

function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const t = document.createElement("textarea");
  t.value = text;
  document.body.appendChild(t);
  t.select();
  try { document.execCommand("copy"); } catch (e) { /* nothing */ }
  t.remove();
  return Promise.resolve();
}

/* One message element: .msg.user (plain text) or .msg.assistant (Markdown). */
function makeMessage(role, text) {
  const m = document.createElement("div");
  m.className = `msg ${role}`;
  const body = document.createElement("div");
  body.className = "body";
  m.appendChild(body);
  if (role === "assistant") {
    const c = document.createElement("button");
    c.className = "copy";
    c.type = "button";
    c.title = "Copy";
    c.textContent = "📋";
    c.setAttribute("aria-label", "Copy this answer");
    c.addEventListener("click", () => copyText(m.fcText || "").then(() => { c.textContent = "✓"; setTimeout(() => (c.textContent = "📋"), 1000); }));
    m.appendChild(c);
  }
  setMessage(m, text, false);
  return m;
}

function setMessage(m, text, streaming) {
  m.fcText = text;
  const body = m.querySelector(".body");
  if (m.classList.contains("assistant")) {
    renderMarkdown(body, text);
    if (streaming) {
      const cur = document.createElement("span");
      cur.className = "cursor";
      cur.textContent = "▌";
      (body.lastElementChild || body).appendChild(cur);
    }
  } else {
    body.textContent = text;
  }
}

/* ---- talking to the server ---- */

async function api(path, body) {
  const opt = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const r = await fetch(path, opt);
  let j = null;
  try { j = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) {
    const e = new Error((j && (j.error || j.detail)) || `HTTP ${r.status}`);
    e.status = r.status;
    e.code = j && j.code;
    throw e;
  }
  return j;
}

/* Reads a text/event-stream body and calls onEvent with each data JSON. */
async function readEvents(resp, onEvent) {
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let k;
    while ((k = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, k);
      buf = buf.slice(k + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(l[5] === " " ? 6 : 5)).join("\n");
      if (data) {
        try { onEvent(JSON.parse(data)); } catch (e) { /* skip a broken event */ }
      }
    }
  }
}

/* ---- one chat view: direct (1 side), battle or side-by-side (2 sides) ---- */

class ChatView {
  constructor(mode) {
    this.mode = mode;
    this.panel = $(`panel-${mode}`);
    this.n = +this.panel.dataset.sides;
    this.chatId = sessionStorage.getItem(`fc.${mode}`);
    this.chat = null;
    this.busy = false;
    this.abort = null;
    this.input = $(`${mode}-input`);
    this.status = $(`${mode}-status`);
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.send(false);
      }
    });
    $(`${mode}-send`).addEventListener("click", () => this.send(false));
    $(`${mode}-stop`).addEventListener("click", () => this.stop());
    $(`${mode}-regen`).addEventListener("click", () => this.send(true));
    $(`${mode}-clear`).addEventListener("click", () => this.reset());
    this.panel.querySelectorAll("[data-vote]").forEach((b) => b.addEventListener("click", () => this.vote(b.dataset.vote)));
    for (let i = 0; i < this.n; i++) {
      const sel = $(`${mode}-model-${i}`) || (mode === "direct" ? $("direct-model") : null);
      if (sel) sel.addEventListener("change", () => { if (this.chat) this.reset(); this.showNames(); });
    }
  }

  pane(i) { return $(`${this.mode}-chat-${i}`); }
  selectedModels() {
    if (this.mode === "direct") return [$("direct-model").value];
    if (this.mode === "sbs") return [$("sbs-model-0").value, $("sbs-model-1").value];
    return [];
  }
  params() {
    if (this.mode === "battle") return {};
    const num = (id) => { const v = parseFloat($(id).value); return Number.isFinite(v) ? v : undefined; };
    return {
      temperature: num(`${this.mode}-temperature`),
      top_p: num(`${this.mode}-top-p`),
      max_new_tokens: num(`${this.mode}-max-tokens`),
    };
  }
  setStatus(text, bad) {
    this.status.textContent = text || "";
    this.status.classList.toggle("bad", !!bad);
  }
  voted() { return this.chat && this.chat.vote; }
  hasAnswer() {
    const p = this.pane(0).querySelectorAll(".msg.assistant");
    return p.length > 0;
  }
  refreshButtons() {
    const b = this.busy;
    const votedArena = this.mode !== "direct" && this.voted();
    $(`${this.mode}-send`).disabled = b || votedArena;
    this.input.disabled = votedArena;
    $(`${this.mode}-stop`).disabled = !b;
    $(`${this.mode}-regen`).disabled = b || !this.hasAnswer() || votedArena;
    $(`${this.mode}-clear`).disabled = b;
    this.panel.querySelectorAll("[data-vote]").forEach((v) => {
      v.disabled = b || !this.hasAnswer() || !!votedArena || (this.mode === "direct" && this.directVoted);
    });
    this.panel.dataset.busy = b ? "1" : "0";
  }
  showNames() {
    for (let i = 0; i < this.n; i++) {
      const h = $(`${this.mode}-name-${i}`);
      const label = this.n === 1 ? "" : `Model ${"AB"[i]}`;
      let name = null;
      if (this.chat && this.chat.sides[i].model) name = this.chat.sides[i].model;
      else if (this.mode !== "battle") name = this.selectedModels()[i];
      h.classList.toggle("revealed", this.mode === "battle" && !!name);
      h.textContent = name ? (label ? `${label}: ${name}` : name) : label || "Chat";
    }
  }
  notice(text) {
    for (let i = 0; i < this.n; i++) {
      const m = makeMessage("notice", text);
      this.pane(i).appendChild(m);
      this.pane(i).scrollTop = this.pane(i).scrollHeight;
    }
  }
  render() {
    for (let i = 0; i < this.n; i++) {
      const pane = this.pane(i);
      pane.textContent = "";
      if (!this.chat) continue;
      for (const msg of this.chat.sides[i].messages) {
        const m = makeMessage(msg.role, msg.role === "user" && msg.input ? msg.input : msg.content);
        if (msg.error_code) m.classList.add("error");
        m.classList.add("done");
        pane.appendChild(m);
      }
      pane.scrollTop = pane.scrollHeight;
    }
    this.showNames();
    if (this.voted() && this.mode !== "direct") this.setStatus(`Voted: ${this.chat.vote}. Start a new round.`);
    this.refreshButtons();
  }
  async load() {
    if (this.chatId) {
      try {
        this.chat = await api(`/web/api/chat/${this.chatId}`);
      } catch (e) {
        this.chatId = null;
        sessionStorage.removeItem(`fc.${this.mode}`);
      }
    }
    this.render();
  }
  reset() {
    if (this.busy) return;
    this.chat = null;
    this.chatId = null;
    this.directVoted = false;
    sessionStorage.removeItem(`fc.${this.mode}`);
    this.setStatus("");
    this.render();
    this.input.disabled = false;
    this.input.focus();
  }
  async create() {
    const body = { mode: this.mode };
    if (this.mode !== "battle") body.models = this.selectedModels();
    this.chat = await api("/web/api/chat", body);
    this.chatId = this.chat.id;
    sessionStorage.setItem(`fc.${this.mode}`, this.chatId);
    this.showNames();
  }
  stop() {
    if (this.abort) this.abort.abort();
  }
  async send(regenerate) {
    if (this.busy) return;
    const text = this.input.value;
    if (!regenerate && !text.trim()) return;
    if (this.mode !== "direct" && this.voted()) {
      this.setStatus("This round has its vote. Start a new round.", true);
      return;
    }
    this.busy = true;
    this.refreshButtons();
    this.setStatus("");
    try {
      if (!this.chatId) await this.create();
    } catch (e) {
      this.busy = false;
      this.refreshButtons();
      this.setStatus(`Cannot start the chat: ${e.message}`, true);
      return;
    }
    const outs = [], userMsgs = [];
    for (let i = 0; i < this.n; i++) {
      const pane = this.pane(i);
      if (regenerate) {
        const last = pane.querySelector(".msg.assistant:last-of-type");
        const all = pane.querySelectorAll(".msg");
        if (all.length && all[all.length - 1].classList.contains("assistant")) all[all.length - 1].remove();
        void last;
      } else {
        const u = makeMessage("user", text);
        pane.appendChild(u);
        userMsgs.push(u);
      }
      const a = makeMessage("assistant", "");
      a.classList.add("streaming");
      setMessage(a, "", true);
      pane.appendChild(a);
      pane.scrollTop = pane.scrollHeight;
      outs.push({ el: a, text: "", pending: false });
    }
    if (!regenerate) this.input.value = "";
    this.directVoted = false;
    this.abort = new AbortController();
    const paint = (o, i, streaming) => {
      setMessage(o.el, o.text, streaming);
      const pane = this.pane(i);
      pane.scrollTop = pane.scrollHeight;
    };
    let failedBeforeStream = null;
    try {
      const resp = await fetch(`/web/api/send/${this.chatId}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(Object.assign({ text: regenerate ? undefined : text, regenerate }, this.params())),
        signal: this.abort.signal,
      });
      if (!resp.ok) {
        let j = null;
        try { j = await resp.json(); } catch (e) { /* not JSON */ }
        failedBeforeStream = (j && j.error) || `HTTP ${resp.status}`;
      } else {
        await readEvents(resp, (ev) => {
          const o = outs[ev.side];
          if (ev.type === "delta" && o) {
            const first = o.text === "";
            o.text += ev.text;
            if (first) {
              paint(o, ev.side, true); // the first token at once, the rest once per frame
            } else if (!o.pending) {
              o.pending = true;
              requestAnimationFrame(() => { o.pending = false; if (o.el.classList.contains("streaming")) paint(o, ev.side, true); });
            }
          } else if (ev.type === "done" && o) {
            o.el.classList.remove("streaming");
            o.el.classList.add("done");
            paint(o, ev.side, false);
          } else if (ev.type === "error" && o) {
            o.el.classList.remove("streaming");
            o.el.classList.add("done", "error");
            paint(o, ev.side, false);
            const err = document.createElement("p");
            err.className = "err";
            err.textContent = `${ev.message} (error_code: ${ev.code})`;
            o.el.querySelector(".body").appendChild(err);
            this.setStatus(ev.message, true);
          }
        });
      }
    } catch (e) {
      if (e.name !== "AbortError") this.setStatus(`Connection lost: ${e.message}`, true);
      else this.setStatus("Stopped.");
    }
    if (failedBeforeStream) {
      outs.forEach((o) => o.el.remove());
      userMsgs.forEach((u) => u.remove());
      if (!regenerate) this.input.value = text;
      this.notice(failedBeforeStream);
      this.setStatus(failedBeforeStream, true);
    }
    outs.forEach((o, i) => {
      if (o.el.classList.contains("streaming")) {
        o.el.classList.remove("streaming");
        o.el.classList.add("done", "stopped");
        paint(o, i, false);
      }
    });
    this.abort = null;
    this.busy = false;
    // the server's copy is the truth (cut input, stored errors)
    try { this.chat = await api(`/web/api/chat/${this.chatId}`); } catch (e) { /* keep what we have */ }
    this.refreshButtons();
    this.panel.dataset.turns = String(this.chat ? this.chat.sides[0].messages.length / 2 : 0);
  }
  async vote(type) {
    if (!this.chatId) return;
    this.panel.querySelectorAll("[data-vote]").forEach((v) => (v.disabled = true));
    try {
      const r = await api(`/web/api/vote/${this.chatId}`, { type });
      if (this.mode === "direct") {
        this.directVoted = true;
        this.setStatus(`Thanks! Your ${type} is saved.`);
      } else {
        this.chat.vote = type;
        r.models.forEach((m, i) => (this.chat.sides[i].model = m));
        this.showNames();
        this.setStatus("Thanks for voting! Your vote is saved. Start a new round 🎲.");
      }
      this.panel.dataset.voteSaved = type;
    } catch (e) {
      this.setStatus(`The vote was not saved: ${e.message}`, true);
    }
    this.refreshButtons();
  }
}

/* ---- model lists ---- */

function fillSelect(sel, names, fallbackIndex) {
  const cur = sel.value;
  sel.textContent = "";
  names.forEach((n) => {
    const o = document.createElement("option");
    o.value = n;
    o.textContent = n;
    sel.appendChild(o);
  });
  if (names.includes(cur)) sel.value = cur;
  else if (names.length) sel.value = names[Math.min(fallbackIndex, names.length - 1)];
}

async function refreshModels(views) {
  try {
    MODELS = await api("/web/api/models");
  } catch (e) {
    return;
  }
  const names = MODELS.models;
  const before = [$("direct-model").value, $("sbs-model-0").value, $("sbs-model-1").value];
  fillSelect($("direct-model"), names, 0);
  fillSelect($("sbs-model-0"), names, 0);
  fillSelect($("sbs-model-1"), names, 1);
  if (!before[0] && names.length > 1) {
    // FastChat: the right side is another model than the left one
    const others = names.filter((n) => n !== $("sbs-model-0").value);
    $("sbs-model-1").value = others[Math.floor(Math.random() * others.length)];
  }
  for (const v of views) {
    if (v.mode === "battle") continue;
    v.showNames();
    // the models of the open chat, else the ones picked before this refresh
    const mine = v.chat ? v.chat.sides.map((x) => x.model) : v.mode === "direct" ? [before[0]] : before.slice(1);
    const gone = mine.filter((m) => m && !names.includes(m));
    if (v.chat && !gone.length && v.status.textContent.startsWith("Not served any more")) v.setStatus("");
    if (!names.length) v.setStatus(MODELS.error ? `No models: ${MODELS.error}` : "No models are served right now.", true);
    else if (gone.length) v.setStatus(`Not served any more: ${gone.join(", ")}`, true);
  }
  if (!MODELS.arena.length) views[0].setStatus("No models are available for battles right now.", true);
}

/* ---- leaderboard ---- */

function heat(canvas, names, matrix, fmt, colour) {
  const ctx = canvas.getContext("2d");
  const n = names.length;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!n) return;
  const left = 130, top = 20, size = Math.min((canvas.width - left - 10) / n, (canvas.height - top - 110) / n);
  ctx.font = "11px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  for (let i = 0; i < n; i++) {
    ctx.fillStyle = "#1f2328";
    ctx.textAlign = "right";
    ctx.fillText(names[i].slice(0, 20), left - 4, top + (i + 0.5) * size);
    ctx.save();
    ctx.translate(left + (i + 0.5) * size, top + n * size + 6);
    ctx.rotate(Math.PI / 3);
    ctx.textAlign = "left";
    ctx.fillText(names[i].slice(0, 20), 0, 0);
    ctx.restore();
    for (let j = 0; j < n; j++) {
      const v = matrix[i] ? matrix[i][j] : null;
      ctx.fillStyle = v === null || v === undefined ? "#eee" : colour(v);
      ctx.fillRect(left + j * size, top + i * size, size - 1, size - 1);
      if (v !== null && v !== undefined && size > 26) {
        ctx.fillStyle = "#000";
        ctx.textAlign = "center";
        ctx.fillText(fmt(v), left + (j + 0.5) * size, top + (i + 0.5) * size);
      }
    }
  }
}

function ciPlot(canvas, rows) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!rows.length) return;
  const lo = Math.min(...rows.map((r) => (r.q025 ?? r.rating))) - 10, hi = Math.max(...rows.map((r) => (r.q975 ?? r.rating))) + 10;
  const left = 130, w = canvas.width - left - 20, step = Math.min(30, (canvas.height - 30) / rows.length);
  const x = (v) => left + ((v - lo) / (hi - lo || 1)) * w;
  ctx.font = "11px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  rows.forEach((r, i) => {
    const y = 15 + (i + 0.5) * step;
    ctx.fillStyle = "#1f2328";
    ctx.textAlign = "right";
    ctx.fillText(r.model.slice(0, 20), left - 6, y);
    ctx.strokeStyle = "#0969da";
    ctx.beginPath();
    ctx.moveTo(x(r.q025 ?? r.rating), y);
    ctx.lineTo(x(r.q975 ?? r.rating), y);
    ctx.stroke();
    ctx.fillStyle = "#0969da";
    ctx.beginPath();
    ctx.arc(x(r.rating), y, 3.5, 0, 2 * Math.PI);
    ctx.fill();
  });
  ctx.fillStyle = "#57606a";
  ctx.textAlign = "center";
  ctx.fillText(Math.round(lo), x(lo), canvas.height - 8);
  ctx.fillText(Math.round(hi), x(hi), canvas.height - 8);
}

async function refreshLeaderboard() {
  let lb;
  try {
    lb = await api("/web/api/leaderboard");
  } catch (e) {
    $("lb-summary").textContent = `Leaderboard not available: ${e.message}`;
    return;
  }
  const rows = lb.models || [];
  $("lb-summary").textContent = `Total #models: ${rows.length}. Total #votes: ${lb.n_battles} ` +
    `(anonymous battles after FastChat's cleaning, of ${lb.n_votes} votes received). ` +
    `Last updated: ${new Date().toLocaleString()}.`;
  $("lb-summary").dataset.votes = String(lb.n_votes);
  const tb = $("lb-table").querySelector("tbody");
  tb.textContent = "";
  const f = (v) => (v === null || v === undefined ? "–" : Math.round(v));
  for (const r of rows) {
    const tr = document.createElement("tr");
    const cells = [r.rank_ub, r.model, f(r.rating),
      r.q975 == null ? "–" : `+${Math.round(r.q975 - r.rating)}/-${Math.round(r.rating - r.q025)}`, r.n_battles, f(r.elo)];
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = String(c);
      tr.appendChild(td);
    }
    tb.appendChild(tr);
  }
  const names = rows.map((r) => r.model);
  heat($("lb-winfrac"), names, lb.win_fraction || [], (v) => v.toFixed(2), (v) => `hsl(${210 - 210 * v}, 70%, ${85 - 30 * Math.abs(v - 0.5)}%)`);
  const maxc = Math.max(1, ...(lb.battle_count || []).flat());
  heat($("lb-count"), names, lb.battle_count || [], (v) => String(v), (v) => `hsl(150, 50%, ${95 - 55 * (v / maxc)}%)`);
  ciPlot($("lb-ci"), rows);
}

/* ---- tabs and start-up ---- */

function showTab(name, views) {
  document.querySelectorAll("#tabs [data-tab]").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.tab === name)));
  document.querySelectorAll(".panel").forEach((p) => (p.hidden = p.id !== `panel-${name}`));
  if (name === "leaderboard") refreshLeaderboard();
  const v = views.find((x) => x.mode === name);
  if (v) v.input.focus();
  sessionStorage.setItem("fc.tab", name);
}

async function main() {
  try { CONFIG = await api("/web/api/config"); } catch (e) { /* defaults */ }
  if (CONFIG && CONFIG.mt_bench_results) $("link-results").hidden = false;
  const views = ["battle", "sbs", "direct"].map((m) => new ChatView(m));
  document.querySelectorAll("#tabs [data-tab]").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab, views)));
  const q = new URLSearchParams(location.search);
  let tab = sessionStorage.getItem("fc.tab") || "battle";
  if (q.has("arena")) tab = "battle";
  if (q.has("compare")) tab = "sbs";
  if (q.has("direct") || q.has("model")) tab = "direct";
  if (q.has("leaderboard")) tab = "leaderboard";
  await refreshModels(views);
  if (q.get("model") && MODELS.models.includes(q.get("model"))) $("direct-model").value = q.get("model");
  await Promise.all(views.map((v) => v.load()));
  showTab(tab, views);
  setInterval(() => refreshModels(views), 15000);
  setInterval(() => { if (!$("panel-leaderboard").hidden) refreshLeaderboard(); }, 5000);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refreshModels(views); });
  window.FC = { views, renderMarkdown, refreshModels: () => refreshModels(views), refreshLeaderboard };
  document.body.dataset.ready = "1";
}

document.addEventListener("DOMContentLoaded", main);

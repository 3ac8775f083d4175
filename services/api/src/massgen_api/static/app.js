// MassGen-on-NATS web page: starts runs and renders them from the run's SSE events only.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { abort: null, panels: {}, agents: {}, runId: null };

function token() { return localStorage.getItem("massgen-token") || ""; }
function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token()) h["Authorization"] = "Bearer " + token();
  return h;
}
function setStatus(text, isError) {
  const el = $("#status-line");
  el.textContent = text;
  el.className = isError ? "error" : "";
}
async function api(path, options) {
  const res = await fetch(path, Object.assign({}, options, { headers: headers((options || {}).headers) }));
  const body = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) {
    const err = body && body.error ? body.error : { message: res.statusText };
    throw new Error(`${res.status}: ${err.message}${err.path ? " (at " + err.path + ")" : ""}`);
  }
  return body;
}

// ---- panels -------------------------------------------------------------------------------

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}
function resetView() {
  $("#agents").innerHTML = "";
  $("#result").className = "card";
  $("#winner").textContent = "";
  $("#final-answer").textContent = "";
  $("#run-status").textContent = "";
  $("#files").replaceChildren();
  state.panels = {};
  state.agents = {};
}
function panelFor(ev) {
  let panel = state.panels[ev.label];
  if (panel) return panel;
  const root = el("div", "agent-panel");
  root.dataset.label = ev.label;
  root.dataset.agent = ev.agent || ev.id || "";
  const title = el("h3");
  title.append(el("span", "label", ev.label), el("span", "model", `${ev.agent || ev.id || ""} ${ev.model || ""}`));
  const usage = el("span", "usage", "");
  usage.title = "tokens and cost of this agent's model calls (litellm's price map; local models cost nothing)";
  const st = el("span", "state", "waiting");
  title.append(usage, st);
  const stream = el("pre", "stream");
  const log = el("ul", "log");
  root.append(title, stream, log);
  $("#agents").append(root);
  panel = { root, stream, log, st, usage, tokens: 0, cost: 0, lastTurn: null, block: null, streamedAnswer: false };
  state.panels[ev.label] = panel;
  return panel;
}
function setState(panel, text) { panel.st.textContent = text; }
function usd(x) { return "$" + (x === 0 ? "0" : x.toFixed(4)); }
// A model call's tokens and dollars (each token_usage event is one call's): the agent's sum.
function addUsage(panel, ev) {
  panel.tokens += (ev.prompt_tokens || 0) + (ev.completion_tokens || 0);
  panel.cost += ev.cost_usd || 0;
  panel.usage.textContent = `${panel.tokens} tok · ${usd(panel.cost)}`;
  panel.root.dataset.tokens = String(panel.tokens);
  panel.root.dataset.costUsd = String(panel.cost);
}
function logLine(panel, cls, text) {
  const li = el("li", cls, text);
  panel.log.append(li);
  panel.log.scrollTop = panel.log.scrollHeight;
}
function append(panel, cls, text) {
  const span = el("span", cls, text);
  panel.stream.append(span);
  panel.stream.scrollTop = panel.stream.scrollHeight;
}
// A line of its own in the agent's stream (ends the answer being written, if any).
function appendLine(panel, cls, text) {
  const last = panel.stream.lastChild;
  const open = last && !last.textContent.endsWith("\n");
  panel.block = null;
  append(panel, cls, (open ? "\n" : "") + text + "\n");
}
function parsed(text) { try { const v = JSON.parse(text); return v && typeof v === "object" ? v : {}; } catch (e) { return {}; } }
function clip(text, n) { text = String(text || "").replace(/\s+/g, " ").trim(); return text.length > n ? text.slice(0, n - 1) + "…" : text; }
const WORKFLOW_TOOLS = new Set(["new_answer", "vote"]);

// Streamed output: text, the answer being written, the vote, tool calls as compact lines.
function renderChunk(p, ev) {
  switch (ev.channel) {
    case "content":
      if (p.block) { p.block = null; append(p, "", "\n"); }
      append(p, "", ev.text);
      break;
    case "reasoning": append(p, "reasoning", ev.text); break;
    case "answer":
      if (p.block !== "answer") { appendLine(p, "answer-head", "✎ answer:"); p.block = "answer"; }
      p.streamedAnswer = true;
      setState(p, "writing answer");
      append(p, "answer", ev.text);
      break;
    case "vote": {
      const v = parsed(ev.text);
      appendLine(p, "vote", `☑ voted for ${v.target}: ${v.reason || ""}`);
      p.shownVote = true;
      break;
    }
    case "tool_args": {
      const a = parsed(ev.text);
      if (a.name) setState(p, "calling " + a.name);
      break;
    }
    case "tool_call": {
      const c = parsed(ev.text);
      if (!c.name || WORKFLOW_TOOLS.has(c.name)) break;
      const args = c.arguments && typeof c.arguments === "object"
        ? Object.entries(c.arguments).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ") : String(c.arguments || "");
      appendLine(p, "tool", `→ ${c.name}(${clip(args, 100)})`);
      setState(p, "running " + c.name);
      break;
    }
    case "tool_result": {
      const r = parsed(ev.text);
      if (!r.name || WORKFLOW_TOOLS.has(r.name)) break;
      const text = String(r.content || "");
      appendLine(p, text.startsWith("Error") ? "tool error" : "tool", `${text.startsWith("Error") ? "✗" : "←"} ${r.name}: ${clip(text, 100) || "(empty)"}`);
      setState(p, "working");
      break;
    }
    default: break;  // a channel this page does not know
  }
}

// ---- event rendering (one case per event kind) ---------------------------------------------

function render(ev) {
  switch (ev.kind) {
    case "run_created":
      for (const a of ev.agents) {
        state.agents[a.id] = a.label;
        panelFor({ label: a.label, agent: a.id, model: `${a.provider}/${a.model}` });
      }
      setStatus(`run ${ev.run_id}: ${ev.question}`);
      break;
    case "turn_started": {
      const p = panelFor(ev);
      if (p.lastTurn) appendLine(p, "reasoning", "── turn " + ev.number + (ev.phase === "present" ? " (final presentation)" : "") + " ──");
      p.lastTurn = ev.turn_id;
      p.block = null;
      p.streamedAnswer = false;
      p.shownVote = false;
      setState(p, ev.phase === "present" ? "presenting" : "working");
      break;
    }
    case "chunk": renderChunk(panelFor(ev), ev); break;
    case "token_usage": addUsage(panelFor(ev), ev); break;
    case "answer_accepted": {
      const p = panelFor(ev);
      if (!p.streamedAnswer) { appendLine(p, "answer-head", "✎ answer:"); append(p, "answer", ev.content.trim() + "\n"); }
      appendLine(p, "accepted", `✓ answer ${ev.version} accepted`);
      if (ev.check) {
        const failure = ev.check.failure ? `; first failure: ${ev.check.failure}` : "";
        appendLine(p, "accepted", `  task's examples: ${ev.check.passed} of ${ev.check.total} pass${failure}`);
      }
      logLine(p, "answer", `answer ${ev.version} accepted`);
      setState(p, "answered");
      break;
    }
    case "workflow_rejected": {
      const p = panelFor(ev);
      appendLine(p, "tool error", `✗ ${ev.tool || "no tool call"} rejected: ${ev.error}`);
      p.streamedAnswer = false;
      p.shownVote = false;
      logLine(p, "error", `rejected ${ev.tool || "(no tool)"}: ${ev.error}`);
      break;
    }
    case "vote_accepted": {
      const p = panelFor(ev);
      if (!p.shownVote) appendLine(p, "vote", `☑ voted for ${ev.target}: ${ev.reason}`);
      logLine(p, "vote", `votes for ${ev.target}: ${ev.reason}`);
      setState(p, "voted");
      break;
    }
    case "vote_discarded": logLine(panelFor(ev), "restart", `vote for ${ev.target} discarded: ${ev.reason}`); break;
    case "restart": {
      const p = panelFor(ev);
      logLine(p, "restart", `restart: ${ev.reason}`);
      setState(p, "restarting");
      break;
    }
    case "tool_denied": {
      const p = panelFor(ev);
      appendLine(p, "tool error", `⛔ ${ev.tool} denied ${ev.path} (${ev.rule})`);
      logLine(p, "error", `tool ${ev.tool} denied on ${ev.path} (${ev.rule})`);
      break;
    }
    case "agent_error": logLine(panelFor(ev), "error", `error: ${ev.error}`); break;
    case "agent_failed": {
      const p = panelFor(ev);
      p.root.classList.add("failed");
      setState(p, "failed");
      logLine(p, "error", `failed: ${ev.error}`);
      break;
    }
    case "consensus": {
      const votes = Object.entries(ev.votes).map(([l, n]) => `${l}: ${n}`).join(", ");
      setStatus(`consensus — ${ev.winner_label} wins (${votes})`);
      const p = state.panels[ev.winner_label];
      if (p) p.root.classList.add("winner");
      break;
    }
    case "deadline_reached": setStatus(`time is up with ${ev.answers} answer(s)`); break;
    case "budget_reached": setStatus(`budget reached (${ev.limit}) with ${ev.answers} answer(s)`); break;
    case "presentation_started": setState(panelFor(ev), "presenting"); break;
    case "final_answer": {
      const p = panelFor(ev);
      p.root.classList.add("winner");
      setState(p, "winner");
      $("#result").className = "card show";
      $("#winner").textContent = `${ev.label} (${ev.agent})`;
      $("#final-answer").textContent = ev.content;
      break;
    }
    case "run_finished":
      $("#result").className = "card show";
      $("#run-status").textContent = `— ${ev.status}${ev.message ? ": " + ev.message : ""}`;
      setStatus(`run ${ev.run_id} ${ev.status}` + (ev.tokens ? ` — ${ev.tokens} tokens` : "")
        + (ev.cost_usd ? `, $${ev.cost_usd.toFixed(4)}` : ""));
      document.body.dataset.runStatus = ev.status;
      loadRuns();
      loadFiles(ev.run_id);
      break;
    default:
      console.warn("unknown event kind", ev.kind);
  }
}

// The run's media files (generated images, audio), fetched with the bearer token and shown
// from blob URLs: an <img src> could not carry the token.
async function loadFiles(runId) {
  const box = $("#files");
  let listing;
  try { listing = await api(`/v1/runs/${runId}/files`); } catch (err) { return; }
  for (const file of listing.files) {
    const res = await fetch(file.url, { headers: headers() });
    if (!res.ok || state.runId !== runId) continue;
    const url = URL.createObjectURL(await res.blob());
    const image = file.mime.startsWith("image/");
    const audio = file.mime.startsWith("audio/");
    const video = file.mime.startsWith("video/");
    // Documents (write_document's PDF, PPTX, DOCX, text) are offered as downloads.
    const tag = image ? "img" : audio ? "audio" : video ? "video" : "a";
    const media = el(tag, null, image || audio || video ? undefined : file.path);
    if (image) { media.src = url; media.alt = file.path; }
    else if (audio || video) { media.src = url; media.controls = true; }
    else { media.href = url; media.download = file.path.split("/").pop(); }
    const figure = el("figure", "file");
    figure.dataset.path = file.path;
    figure.append(media, el("figcaption", null, `${file.path} (${(file.size / 1024).toFixed(1)} KB)`));
    box.append(figure);
  }
  document.body.dataset.files = String(box.children.length);
}

// Config keys the server accepted but does not apply (the create response says which).
function showWarnings(warnings) {
  const box = $("#warnings");
  box.textContent = (warnings || []).map((w) => "⚠ " + w).join("\n");
  box.style.display = warnings && warnings.length ? "block" : "none";
}

// ---- SSE over fetch (so the bearer token goes in a header, not the URL) ----------------------

async function follow(runId) {
  if (state.abort) state.abort.abort();
  const ctrl = new AbortController();
  state.abort = ctrl;
  state.runId = runId;
  resetView();
  delete document.body.dataset.runStatus;
  delete document.body.dataset.files;
  let lastId = null;
  for (let attempt = 0; attempt < 20 && !ctrl.signal.aborted; attempt++) {
    try {
      const h = headers({ Accept: "text/event-stream" });
      if (lastId) h["Last-Event-ID"] = lastId;
      const res = await fetch(`/v1/runs/${runId}/events`, { headers: h, signal: ctrl.signal });
      if (res.status === 204) return;
      if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let data = "", id = null;
          for (const line of block.split("\n")) {
            if (line.startsWith("data: ")) data += line.slice(6);
            else if (line.startsWith("id: ")) id = line.slice(4);
          }
          if (!data) continue;
          if (id) lastId = id;
          const ev = JSON.parse(data);
          render(ev);
          if (ev.kind === "run_finished") return;
        }
      }
    } catch (err) {
      if (ctrl.signal.aborted) return;
      setStatus(`event stream interrupted (${err.message}); resuming…`, true);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

// ---- forms and lists -----------------------------------------------------------------------

async function loadTeams() {
  try {
    const body = await api("/v1/teams");
    const select = $("#team");
    const chosen = select.value;
    select.innerHTML = "";
    for (const t of body.data) {
      const opt = el("option", null, `${t.name} — ${t.description}`);
      opt.value = t.name;
      select.append(opt);
    }
    const custom = el("option", null, "(config JSON below)");
    custom.value = "";
    select.append(custom);
    if (chosen && body.data.some((t) => t.name === chosen)) select.value = chosen;
    toggleConfig();
    $("#conn").textContent = "connected";
  } catch (err) {
    $("#conn").textContent = err.message.startsWith("401") ? "token needed" : err.message;
  }
}
function toggleConfig() { $("#config").style.display = $("#team").value ? "none" : "block"; }

async function loadRuns() {
  try {
    const body = await api("/v1/runs?limit=50");
    const list = $("#runs");
    list.innerHTML = "";
    for (const r of body.data) {
      const li = el("li");
      li.dataset.run = r.id;
      li.append(el("div", null, r.question.slice(0, 80)), el("div", "st", `${r.status} · ${r.team || "config"} · ${new Date(r.created_at * 1000).toLocaleString()}`));
      li.onclick = () => follow(r.id);
      list.append(li);
    }
  } catch (err) { /* shown by loadTeams */ }
}

async function start(event) {
  event.preventDefault();
  const body = { question: $("#question").value.trim() };
  if ($("#team").value) body.team = $("#team").value;
  else {
    try { body.config = JSON.parse($("#config").value || "null"); }
    catch (err) { setStatus("config is not valid JSON: " + err.message, true); return; }
  }
  try {
    setStatus("starting…");
    const created = await api("/v1/runs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    loadRuns();
    follow(created.id);
    showWarnings(created.warnings);
  } catch (err) { setStatus(err.message, true); }
}

$("#token").value = token();
$("#token").addEventListener("change", () => { localStorage.setItem("massgen-token", $("#token").value.trim()); loadTeams(); loadRuns(); });
$("#team").addEventListener("change", toggleConfig);
$("#run-form").addEventListener("submit", start);
$("#refresh").addEventListener("click", loadRuns);
loadTeams();
loadRuns();

// The muster dashboard: plain JavaScript over the JSON API.
"use strict";
const $ = (id) => document.getElementById(id);
let token = localStorage.getItem("muster-token") || "";

async function api(path, opts = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + token }, opts.headers || {});
  if (opts.body) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, Object.assign({}, opts, { headers }));
  if (resp.status === 401) { showLogin("That token was not accepted."); throw new Error("unauthorized"); }
  return resp;
}

function showLogin(msg) {
  $("login").hidden = false; $("app").hidden = true;
  if (msg) $("form-error").textContent = msg;
}

function text(el, s) { el.textContent = s == null ? "" : String(s); return el; }
function cell(row, s) { row.appendChild(text(document.createElement("td"), s)); }

async function loadAgents() {
  const data = await (await api("/agents")).json();
  const body = $("agents").querySelector("tbody");
  body.replaceChildren();
  for (const a of data.agents) {
    const tr = document.createElement("tr");
    cell(tr, a.name); cell(tr, a.addr); cell(tr, a.tags.join(",")); cell(tr, a.last_seen || "-");
    body.appendChild(tr);
  }
}

async function loadHistory() {
  const data = await (await api("/runs?per_page=20")).json();
  const body = $("history").querySelector("tbody");
  body.replaceChildren();
  for (const r of data.runs) {
    const tr = document.createElement("tr");
    cell(tr, r.started); cell(tr, r.action + " " + r.args.join(" ")); cell(tr, r.user);
    cell(tr, Object.entries(r.counts).map(([k, v]) => v + " " + k).join(", ")); cell(tr, r.exit);
    tr.addEventListener("click", () => watch(r.request_id));
    body.appendChild(tr);
  }
}

let previewTimer = null;
function schedulePreview() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(preview, 250);
}
async function preview() {
  const q = new URLSearchParams({ spec: $("targets").value, tags: $("tags").value });
  const resp = await api("/targets?" + q);
  const data = await resp.json();
  if (!resp.ok) { text($("preview"), data.error); return; }
  let s = data.targets.length + " target(s): " + (data.folded || "none");
  if (data.missing.length) s += "; not dialled: " + data.missing.join(", ");
  text($("preview"), s);
}

// One run's view, fed by its event stream.
let current = null;
function watch(id) {
  if (current) current.abort();
  current = new AbortController();
  const view = { id, targets: new Map(), order: [] };
  $("run-view").hidden = false;
  text($("run-id"), id); text($("run-state"), "running");
  $("chips").replaceChildren(); $("hosts").replaceChildren(); $("groups").replaceChildren();
  api("/runs/" + id).then((r) => r.json()).then((run) => {
    for (const t of run.targets || []) target(view, t.target);
    render(view);
  });
  stream(id, current.signal, (name, ev) => onEvent(view, name, ev));
}

function target(view, name) {
  if (!view.targets.has(name)) {
    view.targets.set(name, { state: "running", detail: "", out: "" });
    view.order.push(name);
  }
  return view.targets.get(name);
}

function onEvent(view, name, ev) {
  if (name === "done") { text($("run-state"), ev.exit === 0 ? "succeeded" : "ended, exit " + ev.exit); loadHistory(); }
  else if (name === "output") target(view, ev.target).out += ev.text || "";
  else if (name === "end") { const t = target(view, ev.target); t.state = ev.state; t.detail = ev.detail; }
  else if (name === "started") target(view, ev.target);
  render(view);
}

function render(view) {
  const n = view.order.length;
  const done = view.order.filter((k) => view.targets.get(k).state !== "running").length;
  $("progress-bar").style.width = (n ? (100 * done) / n : 0) + "%";
  text($("progress-text"), done + " of " + n + " done");
  $("chips").replaceChildren(...view.order.map((k) => {
    const t = view.targets.get(k);
    const c = text(document.createElement("span"), k + ": " + t.state);
    c.className = "chip " + t.state; c.dataset.target = k; c.dataset.state = t.state; c.title = t.detail;
    return c;
  }));
  const groups = new Map();
  for (const k of view.order) {
    const t = view.targets.get(k);
    const key = t.state + "\u0000" + t.out;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(k);
  }
  $("groups").replaceChildren(...[...groups.entries()].map(([key, names]) => {
    const [state, out] = key.split("\u0000");
    const div = document.createElement("div");
    div.appendChild(text(document.createElement("strong"), names.join(",") + " (" + names.length + "): " + state));
    div.appendChild(text(document.createElement("pre"), out));
    return div;
  }));
  $("hosts").replaceChildren(...view.order.map((k) => {
    const t = view.targets.get(k);
    const d = document.createElement("details");
    d.appendChild(text(document.createElement("summary"), k + " - " + t.state));
    d.appendChild(text(document.createElement("pre"), t.out));
    return d;
  }));
}

// Server-Sent Events over fetch, so the token goes in a header.
async function stream(id, signal, onEvent) {
  const resp = await api("/runs/" + id + "/events", { signal });
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i); buf = buf.slice(i + 2);
      let name = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (data) onEvent(name, JSON.parse(data));
    }
  }
}

async function startRun(e) {
  e.preventDefault();
  text($("form-error"), "");
  const body = { targets: $("targets").value, action: $("action").value,
    args: $("args").value.split(" ").filter((s) => s) };
  const tags = $("tags").value.split(",").map((s) => s.trim()).filter((s) => s);
  if (tags.length) body.tags = tags;
  if ($("timeout").value) body.timeout = Number($("timeout").value);
  const resp = await api("/run", { method: "POST", body: JSON.stringify(body) });
  const data = await resp.json();
  if (!resp.ok) { text($("form-error"), data.error); return; }
  watch(data.request_id);
}

async function start() {
  if (!token) { showLogin(); return; }
  try {
    await loadAgents();
  } catch (e) { return; }
  $("login").hidden = true; $("app").hidden = false;
  loadHistory(); preview();
}

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("token").value.trim();
  localStorage.setItem("muster-token", token);
  start();
});
$("run-form").addEventListener("submit", startRun);
$("targets").addEventListener("input", schedulePreview);
$("tags").addEventListener("input", schedulePreview);
start();

// podgate web UI: sign in with an API token, list/create/delete sandboxes, and a terminal that
// fits the window, follows resizes and re-attaches (screen restored by the agent) after a drop.
"use strict";

const PROTOCOL = "podgate.terminal.v1";
const $ = (id) => document.getElementById(id);
const state = { token: localStorage.getItem("podgate.token") || "", term: null, fit: null, ws: null, session: null, ended: false, closing: false, share: null };

function show(view) {
  for (const id of ["signin", "sandboxes", "terminal-view"]) $(id).hidden = id !== view;
  $("signout").hidden = view === "signin" || !state.token;
}

async function api(method, path, body, auth = true) {
  const headers = {};
  if (auth) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 204) return null;
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    const err = new Error((data.error && data.error.message) || `HTTP ${r.status}`);
    err.status = r.status;
    throw err;
  }
  return data;
}

function params() {
  return new URLSearchParams(location.hash.slice(1));
}

// ---- sign in -------------------------------------------------------------------------------
async function signIn(token) {
  state.token = token;
  const me = await api("GET", "/v1/users/me");
  localStorage.setItem("podgate.token", token);
  $("who").textContent = `signed in as ${me.name} (${me.role})`;
}

$("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("signin-error").textContent = "";
  try {
    await signIn($("token").value.trim());
    route();
  } catch (err) {
    state.token = "";
    $("signin-error").textContent = err.message;
  }
});

$("signout").addEventListener("click", () => {
  localStorage.removeItem("podgate.token");
  state.token = "";
  closeTerminal();
  location.hash = "";
  route();
});

// ---- sandboxes -----------------------------------------------------------------------------
let refreshTimer = null;

async function refresh() {
  const { sandboxes } = await api("GET", "/v1/sandboxes");
  const tbody = $("list");
  tbody.replaceChildren();
  for (const s of sandboxes) {
    const tr = document.createElement("tr");
    tr.dataset.name = s.name;
    const cell = (text, cls) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    };
    cell(s.name);
    cell(s.state, `state-${s.state}`);
    cell(s.image);
    cell(s.expires_at ? new Date(s.expires_at).toLocaleString() : "-");
    const actions = document.createElement("td");
    const open = document.createElement("button");
    open.textContent = "Terminal";
    open.className = "open-terminal";
    open.disabled = s.state !== "running";
    open.onclick = () => { location.hash = `sandbox=${encodeURIComponent(s.id)}`; };
    const del = document.createElement("button");
    del.textContent = "Delete";
    del.className = "delete";
    del.onclick = async () => {
      if (!confirm(`Delete ${s.name}?`)) return;
      try { await api("DELETE", `/v1/sandboxes/${encodeURIComponent(s.id)}`); } catch (err) { $("create-error").textContent = err.message; }
      refresh();
    };
    actions.append(open, " ", del);
    tr.append(actions);
    tbody.append(tr);
  }
}

$("create-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("create-error").textContent = "";
  const env = {};
  for (const line of $("create-env").value.split("\n")) {
    if (!line.trim()) continue;
    const i = line.indexOf("=");
    if (i < 1) { $("create-error").textContent = `expected KEY=value, got "${line}"`; return; }
    env[line.slice(0, i).trim()] = line.slice(i + 1);
  }
  const body = { env };
  if ($("create-image").value.trim()) body.image = $("create-image").value.trim();
  if ($("create-name").value.trim()) body.name = $("create-name").value.trim();
  $("create-button").disabled = true;
  try {
    await api("POST", "/v1/sandboxes", body);
    $("create-name").value = "";
  } catch (err) {
    $("create-error").textContent = err.message;
  } finally {
    $("create-button").disabled = false;
  }
  refresh();
});

// ---- terminal ------------------------------------------------------------------------------
function screenText() {
  if (!state.term) return "";
  const b = state.term.buffer.active;
  const lines = [];
  for (let i = 0; i < state.term.rows; i++) {
    const line = b.getLine(b.viewportY + i);
    lines.push(line ? line.translateToString(true) : "");
  }
  return lines.join("\n");
}
window.podgate = { screenText, get term() { return state.term; } };

function setStatus(text) { $("terminal-status").textContent = text; }

function closeTerminal() {
  state.closing = true;
  if (state.ws) state.ws.close();
  if (state.term) state.term.dispose();
  state.ws = state.term = state.fit = state.session = null;
  window.removeEventListener("resize", onWindowResize);
}

function onWindowResize() { if (state.fit) state.fit.fit(); }

async function newSession(sandbox, terminalId, readOnly) {
  if (state.share) return api("POST", "/v1/terminal-sessions", { share_token: state.share }, false);
  const body = { read_only: readOnly, cols: state.term.cols, rows: state.term.rows };
  if (terminalId) body.terminal_id = terminalId;
  return api("POST", `/v1/sandboxes/${encodeURIComponent(sandbox)}/terminals`, body);
}

function connect(session) {
  state.session = session;
  const url = new URL(session.url, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(url, [PROTOCOL, `token.${session.token}`]);
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  ws.onopen = () => {
    setStatus(session.read_only ? "connected (read-only)" : "connected");
    if (!session.read_only) ws.send(JSON.stringify({ type: "resize", cols: state.term.cols, rows: state.term.rows }));
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data === "string") {
      const msg = JSON.parse(ev.data);
      if (msg.type === "exit") {
        state.ended = true;
        setStatus(`exited with code ${msg.code}`);
      }
      return;
    }
    state.term.write(new Uint8Array(ev.data));
  };
  ws.onclose = () => {
    if (state.ws !== ws || state.closing || state.ended) return;
    setStatus("connection lost, re-attaching…");
    setTimeout(() => reattach(session), 1000);
  };
}

async function reattach(old) {
  if (state.closing || !state.term) return;
  try {
    connect(await newSession(old.sandbox_id, old.terminal_id, old.read_only));
  } catch (err) {
    setStatus(`re-attach failed: ${err.message}; retrying`);
    if (err.status !== 404) setTimeout(() => reattach(old), 2000);
  }
}

async function openTerminal(sandbox, terminalId, readOnly) {
  closeTerminal();
  state.closing = false;
  state.ended = false;
  show("terminal-view");
  $("share").hidden = readOnly;
  $("unshare").hidden = readOnly;
  $("share-link").hidden = true;
  const term = new Terminal({ cursorBlink: true, scrollback: 5000, fontFamily: "monospace", fontSize: 14 });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open($("terminal"));
  fit.fit();
  state.term = term;
  state.fit = fit;
  window.addEventListener("resize", onWindowResize);
  term.onData((d) => {
    if (state.ws && state.ws.readyState === WebSocket.OPEN && !state.session.read_only) state.ws.send(new TextEncoder().encode(d));
  });
  term.onResize(({ cols, rows }) => {
    if (state.ws && state.ws.readyState === WebSocket.OPEN && !state.session.read_only) state.ws.send(JSON.stringify({ type: "resize", cols, rows }));
  });
  try {
    const session = await newSession(sandbox, terminalId, readOnly);
    $("terminal-title").textContent = `${session.sandbox_id} · ${session.terminal_id}`;
    if (!state.share) history.replaceState(null, "", `#sandbox=${encodeURIComponent(session.sandbox_id)}&terminal=${encodeURIComponent(session.terminal_id)}`);
    connect(session);
    term.focus();
  } catch (err) {
    setStatus(err.message);
  }
}

$("back").addEventListener("click", () => { closeTerminal(); location.hash = ""; });

$("share").addEventListener("click", async () => {
  const s = state.session;
  if (!s) return;
  try {
    const share = await api("POST", `/v1/sandboxes/${encodeURIComponent(s.sandbox_id)}/terminals/${encodeURIComponent(s.terminal_id)}/share`);
    const link = `${location.origin}${location.pathname}#share=${encodeURIComponent(share.share_token)}`;
    $("share-link").value = link;
    $("share-link").hidden = false;
    try { await navigator.clipboard.writeText(link); setStatus("read-only link copied (valid for 1 hour)"); }
    catch { $("share-link").select(); setStatus("copy the read-only link (valid for 1 hour)"); }
  } catch (err) {
    setStatus(err.message);
  }
});

$("unshare").addEventListener("click", async () => {
  const s = state.session;
  if (!s) return;
  try {
    await api("DELETE", `/v1/sandboxes/${encodeURIComponent(s.sandbox_id)}/terminals/${encodeURIComponent(s.terminal_id)}/share`);
    $("share-link").hidden = true;
    setStatus("read-only links to this terminal revoked");
  } catch (err) {
    setStatus(err.message);
  }
});

// ---- routing -------------------------------------------------------------------------------
async function route() {
  clearInterval(refreshTimer);
  const p = params();
  if (p.get("share")) {
    state.share = p.get("share");
    $("who").textContent = "read-only shared terminal";
    return openTerminal(null, null, true);
  }
  state.share = null;
  if (!state.token) return show("signin");
  try {
    if (!$("who").textContent) await signIn(state.token);
  } catch {
    state.token = "";
    localStorage.removeItem("podgate.token");
    return show("signin");
  }
  if (p.get("sandbox")) return openTerminal(p.get("sandbox"), p.get("terminal"), false);
  closeTerminal();
  show("sandboxes");
  refresh().catch((err) => { $("create-error").textContent = err.message; });
  refreshTimer = setInterval(() => refresh().catch(() => {}), 3000);
}

window.addEventListener("hashchange", () => {
  // The terminal view rewrites the hash itself; only react to navigation.
  const p = params();
  if (state.session && p.get("terminal") === state.session.terminal_id) return;
  route();
});
route();

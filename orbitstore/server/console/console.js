// orbitstore web console: plain JavaScript, no build step, talks only to this node's API.
// Every API call goes through api() or socket() with a literal path template (a backquoted
// string): tests/test_console.py reads them from this file and checks that each exists.
"use strict";

const CHAT = "chat";
const TODOS = "todos";
const NOTES = "notes";
const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;

// A token in the URL (#token=...) is kept for this tab: nodes bound off loopback need one.
const hashToken = new URLSearchParams(location.hash.slice(1)).get("token");
if (hashToken) sessionStorage.setItem("orbitstore-token", hashToken);
const token = sessionStorage.getItem("orbitstore-token");

function showError(err) { $("error").textContent = err ? String(err.message || err) : ""; }

async function api(method, path, body) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = "Bearer " + token;
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error ? `${data.error.code}: ${data.error.message}` : response.statusText);
  return data;
}

function socket(path) {
  const url = new URL(path, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (token) url.searchParams.set("token", token);
  return new WebSocket(url);
}

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
}

// Calls refresh() now and after every change committed to database db (live, over the
// changes feed WebSocket); reconnects after a drop.
async function follow(db, refresh) {
  let since = 0;
  try { since = (await api("GET", `/v1/databases/${enc(db)}`)).last_seq || 0; } catch (err) { showError(err); }
  try { await refresh(); } catch (err) { showError(err); }  // the node may be away: retry below
  let pending = false;
  const ws = socket(`/v1/databases/${enc(db)}/changes/ws?since=${since}`);
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.seq) since = message.seq;
    if (message.type === "error") showError(message.error.message);
    if (message.type !== "change" || pending) return;
    pending = true;  // a burst of changes: one refresh
    setTimeout(() => { pending = false; refresh().catch(showError); }, 50);
  };
  ws.onclose = () => setTimeout(() => follow(db, refresh).catch(showError), 2000);
}

// -- chat ---------------------------------------------------------------------------------

async function refreshChat() {
  const { items } = await api("GET", `/v1/databases/${enc(CHAT)}/items?reverse=true&limit=100`);
  const list = $("chat-messages");
  list.replaceChildren(...items.reverse().map((item) => {
    const v = item.value || {};
    const when = new Date(item.ts).toLocaleTimeString();
    return el("li", { title: `${item.writer} ${item.cid}` },
      el("span", { className: "muted", textContent: when + " " }),
      el("b", { textContent: String(v.author || "anonymous") }),
      String(typeof v === "object" ? v.text : v));
  }));
  list.scrollTop = list.scrollHeight;
}

$("chat-author").value = localStorage.getItem("orbitstore-author") || "";
$("chat-form").onsubmit = async (event) => {
  event.preventDefault();
  const author = $("chat-author").value.trim() || "anonymous";
  localStorage.setItem("orbitstore-author", author);
  const text = $("chat-text").value;
  try {
    await api("POST", `/v1/databases/${enc(CHAT)}/items`, { value: { author, text } });
    $("chat-text").value = "";
    showError(null);
  } catch (err) { showError(err); }
};

// -- todos --------------------------------------------------------------------------------

async function refreshTodos() {
  const { documents } = await api("GET", `/v1/databases/${enc(TODOS)}/docs?limit=1000`);
  $("todo-list").replaceChildren(...documents.map((doc) => {
    const box = el("input", { type: "checkbox", checked: !!doc.done, title: "done" });
    box.onchange = () => patchTodo(doc._id, { done: box.checked });
    const title = el("span", { className: "title", textContent: String(doc.title || doc._id) });
    const rename = el("button", { type: "button", textContent: "rename" });
    rename.onclick = () => {
      const name = prompt("rename todo", doc.title || "");
      if (name) patchTodo(doc._id, { title: name });
    };
    const remove = el("button", { type: "button", textContent: "delete" });
    remove.onclick = () => api("DELETE", `/v1/databases/${enc(TODOS)}/docs/${enc(doc._id)}`).catch(showError);
    return el("li", { className: doc.done ? "done" : "" }, box, title, rename, remove);
  }));
}

function patchTodo(id, set) {
  return api("PATCH", `/v1/databases/${enc(TODOS)}/docs/${enc(id)}`, { set }).catch(showError);
}

$("todo-form").onsubmit = async (event) => {
  event.preventDefault();
  const id = Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
  try {
    await api("POST", `/v1/databases/${enc(TODOS)}/docs`, { _id: id, title: $("todo-title").value, done: false });
    $("todo-title").value = "";
    showError(null);
  } catch (err) { showError(err); }
};

// -- notes: the ydoc as a shared plain-text editor (Yjs over the node's y-websocket room) ----

function startEditor() {
  const lib = window.OrbitstoreYjs;  // yjs-bundle.js; without it the editor stays off
  const area = $("notes-text");
  if (!lib) { area.disabled = true; $("notes-status").textContent = "no Yjs bundle"; return; }
  const doc = new lib.Y.Doc();
  const text = doc.getText("text");
  const server = new URL("/ydoc", location.href);
  server.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const provider = new lib.WebsocketProvider(server.href, NOTES, doc, { params: token ? { token } : {} });
  provider.on("status", (event) => { $("notes-status").textContent = event.status; });
  // The caret sticks to the character before it (a Yjs relative position, assoc -1), so
  // text another editor inserts before it shifts it, and text inserted right after it
  // stays after it: two people typing at one place each keep typing after their own text.
  let caret = null;
  const rel = (index) => lib.Y.createRelativePositionFromTypeIndex(text, index, -1);
  const keep = () => { caret = [rel(area.selectionStart), rel(area.selectionEnd)]; };
  for (const name of ["keyup", "mouseup", "select", "focus"]) area.addEventListener(name, keep);
  const abs = (pos, fallback) => {
    const at = pos && lib.Y.createAbsolutePositionFromRelativePosition(pos, doc);
    return at ? at.index : fallback;
  };
  text.observe((event) => {
    if (event.transaction.local) return;
    const [from, to] = caret || [null, null];
    const start = abs(from, area.selectionStart), end = abs(to, area.selectionEnd);
    area.value = text.toString();
    area.setSelectionRange(Math.min(start, area.value.length), Math.min(end, area.value.length));
    area.dispatchEvent(new Event("remote-change"));  // tests and the latency benchmark wait on it
  });
  area.oninput = () => {
    // One edit: the changed middle between the common prefix and the common suffix.
    const before = text.toString(), after = area.value;
    let head = 0;
    while (head < before.length && head < after.length && before[head] === after[head]) head++;
    let tail = 0;
    while (tail < before.length - head && tail < after.length - head
      && before[before.length - 1 - tail] === after[after.length - 1 - tail]) tail++;
    doc.transact(() => {
      text.delete(head, before.length - head - tail);
      text.insert(head, after.slice(head, after.length - tail));
    });
    keep();
  };
  showPresence(provider.awareness, doc.clientID);
}

// Presence: this tab's name (the chat name, else guest-<n>) in the document's awareness,
// and the names of everyone else editing it, on this node or, over gossip, on others.
function showPresence(awareness, self) {
  const me = () => $("chat-author").value.trim() || `guest-${self % 1000}`;
  awareness.setLocalStateField("user", { name: me() });
  $("chat-author").addEventListener("change", () => awareness.setLocalStateField("user", { name: me() }));
  awareness.on("change", () => {
    const names = [...awareness.getStates()].filter(([id, state]) => id !== self && state.user)
      .map(([, state]) => String(state.user.name)).sort();
    $("notes-presence").replaceChildren(...names.map((name) => el("li", { textContent: name })));
  });
}

// -- node, peers, sync (polled) -----------------------------------------------------------

async function refreshSync() {
  const status = await api("GET", `/v1/sync`);
  const node = status.node || status;
  $("node-id").textContent = node.peer_id ? `peer ${node.peer_id}` : node.writer;
  const rows = [["writer", node.writer], ["peer id", node.peer_id],
    ["addresses", (node.addresses || []).join("\n")], ["connected peers", (node.connected || []).join("\n") || "none"]];
  $("node-info").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { textContent: k }),
    el("dd", {}, el("code", { textContent: String(v ?? "-") }))]));
  $("sync-table").tBodies[0].replaceChildren(...(status.databases || []).map((d) => el("tr", {},
    ...[d.name || d.address, d.entries, d.heads, d.missing, d.peers.length, d.synced ? "yes" : "no"]
      .map((v) => el("td", { textContent: String(v) })))));
}

// -- databases, entries, SQL ----------------------------------------------------------------

async function refreshDatabases() {
  const { databases } = await api("GET", `/v1/databases`);
  $("db-table").tBodies[0].replaceChildren(...databases.map((d) => {
    const row = el("tr", { className: "clickable", title: "show the newest entries" },
      el("td", { textContent: d.name || "-" }), el("td", { textContent: d.type }),
      el("td", {}, el("code", { textContent: d.address })));
    row.onclick = () => showEntries(d.name || d.address.split("/").pop()).catch(showError);
    return row;
  }));
}

async function showEntries(db) {
  const { entries } = await api("GET", `/v1/databases/${enc(db)}/entries?limit=50&reverse=true`);
  $("entries-title").textContent = `Entries of ${db} (newest 50)`;
  $("entries").textContent = entries.map((e) => `${e.clock}\t${e.cid.slice(0, 16)}…\t${JSON.stringify(e.payload)}`).join("\n");
}

$("sql-form").onsubmit = async (event) => {
  event.preventDefault();
  try {
    const { columns, rows } = await api("POST", `/v1/query`, { sql: $("sql-text").value });
    const head = el("tr", {}, ...columns.map((c) => el("th", { textContent: c })));
    const body = rows.map((r) => el("tr", {}, ...r.map((v) => el("td", { textContent: typeof v === "string" ? v : JSON.stringify(v) }))));
    $("sql-result").replaceChildren(el("table", {}, el("thead", {}, head), el("tbody", {}, ...body)));
    showError(null);
  } catch (err) { $("sql-result").textContent = String(err.message || err); }
};

function poll(fn, ms) {
  const tick = () => fn().then(() => showError(null), showError).finally(() => setTimeout(tick, ms));
  tick();
}

poll(refreshSync, 2000);
poll(refreshDatabases, 5000);
follow(CHAT, refreshChat).catch(showError);
follow(TODOS, refreshTodos).catch(showError);
startEditor();

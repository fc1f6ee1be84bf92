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
//
// The textarea and the Y.Text hold the same string between events, and neither is ever
// rewritten whole:
// - a local input event becomes one Yjs edit at the caret position of that event: the
//   change between the value before and after it is looked for only around the
//   selection at "beforeinput" and the caret after "input" (a plain common-prefix diff
//   of the whole text cannot tell "t|tu" + "t" from "tt|u": with the other page's
//   characters next to the caret it put the key after them, and the two texts
//   interleaved);
// - a remote update is applied to the textarea delta by delta with setRangeText(...,
//   "preserve"): the browser moves the caret and the selection with the text, and a
//   remote insertion at the caret goes after it, so each typist keeps typing after
//   their own text.

// The edit that turns `before` into `after` (two strings), given the selection when the
// edit began ([start, end] in `before`) and the caret after it (in `after`): the common
// prefix may not pass the start of either, nor the common suffix their ends.
function localEdit(before, after, [start, end], caret) {
  let head = 0;
  const headMax = Math.min(start, caret, before.length, after.length);
  while (head < headMax && before[head] === after[head]) head++;
  let tail = 0;
  const tailMax = Math.min(before.length - Math.max(end, head), after.length - Math.max(caret, head));
  while (tail < tailMax && before[before.length - 1 - tail] === after[after.length - 1 - tail]) tail++;
  return { index: head, remove: before.length - head - tail, insert: after.slice(head, after.length - tail) };
}

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
  const cursors = remoteCursors(area, lib, doc, text, provider.awareness);

  let shown = area.value = text.toString();  // what the textarea shows (= text)
  const resync = () => {  // a safety net: never needed while the two agree
    const [start, end] = [area.selectionStart, area.selectionEnd];
    area.value = shown = text.toString();
    area.setSelectionRange(Math.min(start, shown.length), Math.min(end, shown.length));
  };
  text.observe((event) => {
    if (event.transaction.local) return;
    let index = 0;
    for (const op of event.delta) {
      if (op.retain) index += op.retain;
      else if (op.delete) area.setRangeText("", index, index + op.delete, "preserve");
      else if (typeof op.insert === "string") {
        area.setRangeText(op.insert, index, index, "preserve");
        index += op.insert.length;
      }
    }
    shown = area.value;
    if (shown !== text.toString()) resync();  // e.g. "\r\n", which a textarea stores as "\n"
    area.dispatchEvent(new Event("remote-change"));  // tests and the latency benchmark wait on it
    cursors.draw();
  });

  let selection = null;  // [start, end] when the input began
  area.addEventListener("beforeinput", () => { selection = [area.selectionStart, area.selectionEnd]; });
  area.addEventListener("input", () => {
    const caret = area.selectionEnd;
    const { index, remove, insert } = localEdit(shown, area.value, selection || [caret, caret], caret);
    selection = null;
    doc.transact(() => {
      if (remove) text.delete(index, remove);
      if (insert) text.insert(index, insert);
    });
    shown = area.value;
    if (shown !== text.toString()) resync();
    cursors.publish();
    cursors.draw();  // the layer's text follows the textarea's
  });
  showPresence(provider.awareness, doc.clientID, cursors);
}

// A colour per Yjs client id, readable on white.
const COLOURS = ["#d81b60", "#1e88e5", "#43a047", "#f4511e", "#8e24aa", "#00897b", "#6d4c41", "#3949ab"];
const colourOf = (id) => COLOURS[id % COLOURS.length];

// The other clients' carets and selections over the textarea. Each client announces its
// selection in its awareness state as {cursor: {anchor, head}}, two Yjs relative
// positions (so they stay on the same characters while text is inserted around them);
// they are drawn in a layer laid over the textarea with the same font, padding and
// wrapping: transparent text, a coloured <mark> per selection, a caret with the name.
function remoteCursors(area, lib, doc, text, awareness) {
  const layer = $("notes-cursors");
  // Anchored to the character after the caret (or to the end): typing at the caret leaves
  // it unchanged, so a typist sends no cursor update per key.
  const toJSON = (index) => lib.Y.relativePositionToJSON(lib.Y.createRelativePositionFromTypeIndex(text, index, 0));
  const toIndex = (json) => {
    try {
      const at = lib.Y.createAbsolutePositionFromRelativePosition(lib.Y.createRelativePositionFromJSON(json), doc);
      return at && at.type === text ? at.index : null;
    } catch { return null; }  // another client's state: never trusted to be well formed
  };
  // At most one cursor update per CURSOR_MS (the last one always goes): a selection being
  // dragged would otherwise cost the node a message per mouse move, relayed and gossiped.
  const CURSOR_MS = 80;
  let sent = "", last = -Infinity, timer = null;
  const send = () => {
    timer = null;
    const focused = document.activeElement === area;
    const [start, end] = [area.selectionStart, area.selectionEnd];
    const [anchor, head] = area.selectionDirection === "backward" ? [end, start] : [start, end];
    const cursor = focused ? { anchor: toJSON(anchor), head: toJSON(head) } : null;
    const key = JSON.stringify(cursor);
    if (key !== sent) { sent = key; last = performance.now(); awareness.setLocalStateField("cursor", cursor); }
  };
  const publish = () => {
    if (timer === null) timer = setTimeout(send, Math.max(0, last + CURSOR_MS - performance.now()));
  };
  // Drawn once per frame at most, after the edit is in the textarea (measuring the layer
  // forces a layout: never inside the keystroke or the remote update itself).
  let frame = null;
  const draw = () => { if (frame === null) frame = requestAnimationFrame(drawNow); };
  const drawNow = () => {
    frame = null;
    const value = area.value;
    const marks = [];
    for (const [id, state] of awareness.getStates()) {
      if (id === doc.clientID || !state.user || !state.cursor) continue;
      const anchor = toIndex(state.cursor.anchor), head = toIndex(state.cursor.head);
      if (anchor === null || head === null) continue;
      const from = Math.min(anchor, head, value.length), to = Math.min(Math.max(anchor, head), value.length);
      marks.push({ id, from, to, at: Math.min(head, value.length), name: String(state.user.name), colour: colourOf(id) });
    }
    const cuts = [...new Set([0, value.length, ...marks.flatMap((m) => [m.from, m.to, m.at])])].sort((x, y) => x - y);
    if (!marks.length) { layer.replaceChildren(); return; }  // nobody else's caret to show
    const nodes = [];
    for (let i = 0; i < cuts.length; i++) {
      for (const m of marks) {
        if (m.at !== cuts[i]) continue;
        const caret = el("span", { className: "remote-caret", title: m.name });
        caret.dataset.client = m.id;
        caret.style.borderColor = m.colour;
        caret.append(el("span", { className: "remote-name", textContent: m.name }));
        caret.lastChild.style.background = m.colour;
        nodes.push(caret);
      }
      if (i + 1 === cuts.length) break;
      const piece = value.slice(cuts[i], cuts[i + 1]);
      const over = marks.filter((m) => m.from <= cuts[i] && cuts[i + 1] <= m.to && m.from < m.to);
      if (!over.length) { nodes.push(piece); continue; }
      const mark = el("mark", { textContent: piece, className: "remote-selection" });
      mark.dataset.client = over[0].id;
      mark.style.background = over[0].colour + "33";
      nodes.push(mark);
    }
    nodes.push("\u200b");  // a last empty line still has a height
    layer.replaceChildren(...nodes);
    fit();
    for (const caret of layer.querySelectorAll(".remote-caret")) {  // no room above: below
      caret.classList.toggle("below", caret.offsetTop - layer.scrollTop < caret.lastChild.offsetHeight);
    }
  };
  // The layer has the textarea's box, font and wrapping width (its scrollbar excluded).
  const fit = () => {
    const style = getComputedStyle(area);
    for (const name of ["font", "lineHeight", "letterSpacing", "tabSize", "paddingTop", "paddingLeft",
      "paddingBottom", "borderTopWidth", "borderLeftWidth", "borderRightWidth", "borderBottomWidth"]) {
      layer.style[name] = style[name];
    }
    const scrollbar = area.offsetWidth - area.clientWidth - parseFloat(style.borderLeftWidth) - parseFloat(style.borderRightWidth);
    layer.style.paddingRight = `${parseFloat(style.paddingRight) + scrollbar}px`;
    layer.style.left = `${area.offsetLeft}px`;
    layer.style.top = `${area.offsetTop}px`;
    layer.style.width = `${area.offsetWidth}px`;
    layer.style.height = `${area.offsetHeight}px`;
    layer.scrollTop = area.scrollTop;
  };
  for (const name of ["select", "keyup", "mouseup", "focus", "blur"]) area.addEventListener(name, publish);
  document.addEventListener("selectionchange", () => { if (document.activeElement === area) publish(); });
  area.addEventListener("scroll", () => { layer.scrollTop = area.scrollTop; });
  new ResizeObserver(() => draw()).observe(area);
  awareness.on("change", draw);
  return { publish, draw };
}

// Presence: this tab's name (the chat name, else guest-<n>) and colour in the document's
// awareness, and the names of everyone else editing it, on this node or, over gossip, on
// others, each in the colour of their caret.
function showPresence(awareness, self, cursors) {
  const me = () => ({ name: $("chat-author").value.trim() || `guest-${self % 1000}`, color: colourOf(self) });
  awareness.setLocalStateField("user", me());
  $("chat-author").addEventListener("change", () => awareness.setLocalStateField("user", me()));
  awareness.on("change", () => {
    const others = [...awareness.getStates()].filter(([id, state]) => id !== self && state.user)
      .map(([id, state]) => [String(state.user.name), id]).sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] - y[1]));
    $("notes-presence").replaceChildren(...others.map(([name, id]) => {
      const item = el("li", { textContent: name, title: `Yjs client ${id}` });
      item.style.borderLeft = `4px solid ${colourOf(id)}`;
      return item;
    }));
  });
  cursors.publish();
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

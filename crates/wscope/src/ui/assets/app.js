// The wscope UI page (a plain version; no framework, no build step).
"use strict";
const token = new URLSearchParams(location.search).get("token") || "";
const rows = [];
let matches = null;
const $ = (id) => document.getElementById(id);
const ws = new WebSocket(`ws://${location.host}/ws?token=${encodeURIComponent(token)}`);
ws.onmessage = (e) => {
  const msg = JSON.parse(e.data);
  if (msg.type === "hello") $("status").textContent = msg.mode;
  if (msg.type === "event") add(msg);
  if (msg.type === "filter") {
    $("filter-error").textContent = msg.ok ? "" : `column ${msg.column}: ${msg.error}`;
    if (msg.ok) { matches = new Set(msg.matches); render(); }
  }
};
ws.onclose = () => { $("status").textContent = "disconnected"; };
function add(msg) {
  rows.push(msg);
  if (msg.event.event === "open") {
    const li = document.createElement("li");
    li.className = "conn";
    li.dataset.conn = msg.event.conn;
    li.textContent = `${msg.event.conn} ${msg.event.url}`;
    $("connections").append(li);
  }
  if (matches && msg.match) matches.add(msg.seq);
  if (!matches || matches.has(msg.seq)) line(msg);
}
function line(msg) {
  const div = document.createElement("div");
  div.className = "row";
  div.dataset.seq = msg.seq;
  const e = msg.event;
  const text = e.payload ? (e.payload.text ?? `<${e.payload.len} bytes>`) : (e.text ?? e.event);
  div.textContent = `${e.conn} ${e.dir || ""} ${e.event} ${text}`;
  div.onclick = () => { $("detail").textContent = JSON.stringify(e, null, 2); };
  $("messages").append(div);
}
function render() {
  $("messages").replaceChildren();
  for (const msg of rows) if (!matches || matches.has(msg.seq)) line(msg);
}
$("filter").addEventListener("keydown", (e) => {
  if (e.key === "Enter") ws.send(JSON.stringify({ op: "filter", expr: $("filter").value }));
});

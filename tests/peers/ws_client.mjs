// A Node.js `ws` client that reports what the library itself saw: the
// close code and reason from its 'close' event, the status from
// 'unexpected-response', errors, and the messages that arrived.
//
// Usage: node ws_client.mjs URL [--send TEXT]... [--send-size N]
//                               [--expect N] [--wait MS] [--no-compress]
//                               [--in-turn]
// --in-turn sends each message after the previous one's reply arrived
// (rather than all at once on open).
// Times ("sent_at", each message's "at", "closed_at") are seconds since
// the connection was opened; "closed_after_start" is seconds since before
// the connection began, so it holds every timer a server or proxy starts
// (a lower bound on it holds however slow the machine).
// Prints one JSON object on stdout.

import WebSocket from "ws";

const args = process.argv.slice(2);
const url = args[0];
const send = [];
let expect = null;
let waitMs = 5000;
let compress = true;
let inTurn = false;
for (let i = 1; i < args.length; i++) {
  if (args[i] === "--send") send.push(args[++i]);
  else if (args[i] === "--send-size") send.push("x".repeat(Number(args[++i])));
  else if (args[i] === "--expect") expect = Number(args[++i]);
  else if (args[i] === "--wait") waitMs = Number(args[++i]);
  else if (args[i] === "--no-compress") compress = false;
  else if (args[i] === "--in-turn") inTurn = true;
}
const startedAt = performance.now();
let openedAt = null;
const since = () => (openedAt === null ? 0 : (performance.now() - openedAt) / 1000);

const result = { opened: false, received: [], errors: [] };
const ws = new WebSocket(url, { perMessageDeflate: compress });
let finished = false;
const finish = () => {
  if (finished) return;
  finished = true;
  clearTimeout(timer);
  console.log(JSON.stringify(result));
  process.exit(0);
};
const timer = setTimeout(() => {
  result.timed_out = true;
  if (ws.readyState === WebSocket.OPEN) ws.close(1000, "client done");
  setTimeout(finish, 1000);
}, waitMs);

ws.on("open", () => {
  result.opened = true;
  openedAt = performance.now();
  result.protocol = ws.protocol;
  result.extensions = ws.extensions;
  result.sent_at = [];
  if (inTurn) sendNext();
  else while (send.length > 0) sendNext();
});
const sendNext = () => {
  if (send.length === 0) return;
  result.sent_at.push(since());
  ws.send(send.shift());
};
ws.on("message", (data, isBinary) => {
  result.received.push({ type: isBinary ? "binary" : "text", len: data.length, data: (isBinary ? data.toString("hex") : data.toString()).slice(0, 200), at: since() });
  if (expect !== null && result.received.length >= expect) ws.close(1000, "client done");
  else if (inTurn) sendNext();
});
ws.on("unexpected-response", (req, res) => {
  result.status = res.statusCode;
  let body = "";
  res.on("data", (chunk) => (body += chunk));
  res.on("end", () => {
    result.body = body;
    finish();
  });
});
ws.on("error", (err) => {
  result.errors.push({ message: err.message, code: err.code ?? null });
});
ws.on("close", (code, reason) => {
  result.close = { code, reason: reason.toString() };
  result.closed_at = since();
  result.closed_after_start = (performance.now() - startedAt) / 1000;
  finish();
});

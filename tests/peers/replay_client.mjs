// A Node.js `ws` client that runs one scripted conversation with
// replay_server.py, for the `wscope replay` tests to record:
// waits for {"type":"hello","session":ID}, then sends
// {"type":"get","id":N,"session":ID} for N = 1..REQUESTS, each once the
// answer to the one before has come (a message with the same id), then
// closes with 1000 "done".
//
// Usage: node replay_client.mjs URL [--requests N] [--wait MS]
// Prints one JSON object on stdout: {"session", "received": [texts],
// "close": {"code", "reason"}, "errors": [...]}; exits 1 if the
// conversation did not finish within MS (5000).

import WebSocket from "ws";

const args = process.argv.slice(2);
const url = args[0];
let requests = 3;
let waitMs = 5000;
for (let i = 1; i < args.length; i++) {
  if (args[i] === "--requests") requests = Number(args[++i]);
  else if (args[i] === "--wait") waitMs = Number(args[++i]);
}

const result = { session: null, received: [], errors: [] };
const ws = new WebSocket(url);
let next = 1;

const finish = (status) => {
  clearTimeout(timer);
  console.log(JSON.stringify(result));
  process.exit(status);
};
const timer = setTimeout(() => {
  result.errors.push(`not finished after ${waitMs} ms`);
  finish(1);
}, waitMs);

const ask = () => {
  if (next > requests) {
    ws.close(1000, "done");
    return;
  }
  ws.send(JSON.stringify({ type: "get", id: next, session: result.session }));
  next += 1;
};

ws.on("message", (data) => {
  const text = data.toString();
  result.received.push(text);
  const message = JSON.parse(text);
  if (message.type === "hello") {
    result.session = message.session;
    ask();
  } else if (message.id === next - 1) {
    ask();
  }
});
ws.on("close", (code, reason) => {
  result.close = { code, reason: reason.toString() };
  finish(result.errors.length === 0 && next > requests ? 0 : 1);
});
ws.on("error", (err) => result.errors.push(String(err)));

// Headless Chromium (Debian's package, driven by playwright-core) talking
// wss:// to a Node.js https + ws server, logging its TLS secrets with
// --ssl-key-log-file, for capture_peers.py's `chromium` scenario.
//
// Usage: node capture_chromium.mjs
//   env WSCOPE_TLS_CERT, WSCOPE_TLS_KEY: the server's certificate and key
//   (for ws.test); WSCOPE_KEYLOG: where Chromium logs its secrets.
//   Prints "listening on wss://127.0.0.1:PORT", waits for a line on stdin,
//   loads https://ws.test:PORT/ (ws.test mapped to 127.0.0.1, so the SNI
//   is ws.test), whose script opens wss://ws.test:PORT/ws (Chromium offers
//   permessage-deflate, the server takes it), sends texts, a JSON
//   document and a binary message, gets each echoed, and closes with
//   1000. Then prints the log: capture_peers.py's PEER format with
//   messages and close codes (no frames) for "client" (what the page's
//   script saw) and "server" (what ws saw).

import fs from "node:fs";
import https from "node:https";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";
import { WebSocketServer } from "ws";

function newPeer() {
  return {
    sent_frames: [],
    received_frames: [],
    sent_messages: [],
    received_messages: [],
    close_sent: null,
    close_rcvd: null,
    close_code: null,
    error: null,
  };
}

function messageRecord(data, isBinary) {
  const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data);
  return isBinary
    ? { opcode: "binary", base64: bytes.toString("base64") }
    : { opcode: "text", text: bytes.toString("utf8") };
}

const page = `<!doctype html>
<meta charset="utf-8">
<title>wscope capture</title>
<script>
  const log = { sent_messages: [], received_messages: [], close_code: null };
  window.wscopeLog = log;
  const b64 = (bytes) => btoa(String.fromCharCode(...bytes));
  const doc = JSON.stringify({ type: "order", id: 42, items: ["a", "b"], note: "x".repeat(80) });
  const messages = ["hello from chromium", doc, doc, "Grüße, 世界 🌍", new Uint8Array([0, 1, 2, 250, 251])];
  const ws = new WebSocket("wss://" + location.host + "/ws");
  ws.binaryType = "arraybuffer";
  let next = 0;
  function send() {
    const m = messages[next++];
    log.sent_messages.push(typeof m === "string" ? { opcode: "text", text: m } : { opcode: "binary", base64: b64(m) });
    ws.send(m);
  }
  ws.onopen = send;
  ws.onmessage = (e) => {
    log.received_messages.push(typeof e.data === "string"
      ? { opcode: "text", text: e.data }
      : { opcode: "binary", base64: b64(new Uint8Array(e.data)) });
    if (next < messages.length) send(); else ws.close(1000, "page done");
  };
  ws.onclose = (e) => { log.close_code = e.code; document.title = "done"; };
</script>`;

const log = { client: newPeer(), server: newPeer() };
const server = https.createServer(
  { cert: fs.readFileSync(process.env.WSCOPE_TLS_CERT), key: fs.readFileSync(process.env.WSCOPE_TLS_KEY) },
  (req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(page);
  },
);
const wss = new WebSocketServer({ server, path: "/ws", perMessageDeflate: true });
const serverClosed = new Promise((resolve) => {
  wss.on("connection", (ws) => {
    ws.on("message", (data, isBinary) => {
      log.server.received_messages.push(messageRecord(data, isBinary));
      log.server.sent_messages.push(messageRecord(data, isBinary));
      ws.send(data, { binary: isBinary });
    });
    ws.on("close", (code) => {
      log.server.close_code = code;
      resolve();
    });
  });
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const port = server.address().port;
console.log(`listening on wss://127.0.0.1:${port}`);
const stdin = createInterface({ input: process.stdin });
await new Promise((resolve) => stdin.once("line", resolve));
stdin.close();
process.stdin.destroy();

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP ws.test 127.0.0.1",
    "--ignore-certificate-errors",
    `--ssl-key-log-file=${process.env.WSCOPE_KEYLOG}`,
  ],
});
const version = browser.version();
try {
  const tab = await browser.newPage();
  await tab.goto(`https://ws.test:${port}/`, { timeout: 30000 });
  await tab.waitForFunction(() => document.title === "done", null, { timeout: 30000 });
  const seen = await tab.evaluate(() => window.wscopeLog);
  Object.assign(log.client, seen);
  await serverClosed;
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify({ library: { client: `chromium ${version}`, server: "ws" }, ...log }));
process.exit(0);

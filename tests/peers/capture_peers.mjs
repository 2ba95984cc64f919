// The Node.js `ws` side of capture_peers.py: a ws server and a ws client in
// one process, both with perMessageDeflate, for a capture of two peers
// nobody here wrote. capture_peers.py starts it, captures the port it names,
// and lets it go.
//
// Usage: node capture_peers.mjs SCENARIO
//   prints "listening on ws://127.0.0.1:PORT", waits for a line on stdin,
//   runs the scenario, prints the JSON log (capture_peers.py's PEER format
//   for "client" and "server") and exits.
//
// Scenarios:
//   node-deflate  the client sends texts (repeated, UTF-8, empty), binary,
//                 a fragmented message (ws's `fin: false`) and a ping; the
//                 server echoes each message and sends one of its own;
//                 the client closes with 1000.
//   node-tls13-aes128, node-tls13-chacha, node-tls12-aes256,
//   node-tls12-chacha
//                 the same over TLS (https + ws, the certificate and key
//                 from WSCOPE_TLS_CERT / WSCOPE_TLS_KEY, trusted through
//                 WSCOPE_TLS_CA, SNI ws.test), restricted to that version
//                 and cipher suite. Run with `node --tls-keylog=FILE` for
//                 the session keys.
//
// Frames are recorded from ws itself: `Sender.frame` (public, static) gets
// each frame's payload after ws compressed it, with its opcode, FIN and
// RSV1; the client's masking keys come from the `generateMask` option.

import { randomFillSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:https";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import WebSocket, { WebSocketServer, Sender } from "ws";

const scenario = process.argv[2];
// TLS scenarios: the version and the one suite both ends allow.
const TLS = {
  "node-tls13-aes128": { version: "TLSv1.3", suites: "TLS_AES_128_GCM_SHA256" },
  "node-tls13-chacha": { version: "TLSv1.3", suites: "TLS_CHACHA20_POLY1305_SHA256" },
  "node-tls12-aes256": { version: "TLSv1.2", suites: "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384" },
  "node-tls12-chacha": { version: "TLSv1.2", suites: "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305" },
};
const tls = TLS[scenario];
if (scenario !== "node-deflate" && !tls) {
  console.error(`unknown scenario ${scenario}`);
  process.exit(2);
}
const tlsOptions = tls && {
  minVersion: tls.version,
  maxVersion: tls.version,
  // TLS 1.3 suites and 1.2 ciphers are set apart in OpenSSL.
  ciphers: tls.suites,
};

const OPCODES = { 0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong" };

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
const log = { client: newPeer(), server: newPeer() };

// Sender.frame masks the payload in place: keep a copy of it first.
const frame = Sender.frame;
Sender.frame = function (data, options) {
  const bytes = typeof data === "string" ? Buffer.from(data) : Buffer.from(data);
  const out = frame.call(this, data, options);
  const side = options.mask ? "client" : "server";
  log[side].sent_frames.push({
    opcode: OPCODES[options.opcode] ?? String(options.opcode),
    opcode_bits: options.opcode,
    fin: Boolean(options.fin),
    rsv1: Boolean(options.rsv1),
    mask: options.mask ? Buffer.from(options.maskBuffer).toString("hex") : null,
    masked: Boolean(options.mask),
    len: bytes.length,
    base64: bytes.toString("base64"),
  });
  return out;
};

function messageRecord(data, isBinary) {
  const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data);
  return isBinary
    ? { opcode: "binary", base64: bytes.toString("base64") }
    : { opcode: "text", text: bytes.toString("utf8") };
}

// Every data message is compressed: ws applies its `threshold` only without
// context takeover.
const deflate = true;
let https = null;
let server;
if (tls) {
  https = createServer({
    ...tlsOptions,
    cert: readFileSync(process.env.WSCOPE_TLS_CERT),
    key: readFileSync(process.env.WSCOPE_TLS_KEY),
  });
  server = new WebSocketServer({ server: https, perMessageDeflate: deflate });
  https.listen(0, "127.0.0.1");
} else {
  server = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: deflate });
}
const serverClosed = new Promise((resolve) => {
  server.on("connection", (ws) => {
    ws.on("message", (data, isBinary) => {
      log.server.received_messages.push(messageRecord(data, isBinary));
      log.server.sent_messages.push(messageRecord(data, isBinary));
      ws.send(data, { binary: isBinary });
      if (!isBinary && data.toString() === "server, your turn") {
        const own = Buffer.alloc(3000, 7);
        log.server.sent_messages.push(messageRecord(own, true));
        ws.send(own, { binary: true });
      }
    });
    ws.on("close", (code, reason) => {
      log.server.close_code = code;
      if (ws._closeFrameReceived) log.server.close_rcvd = { code, reason: reason.toString() };
      resolve();
    });
    ws.on("error", (err) => {
      log.server.error = String(err);
    });
  });
});

await new Promise((resolve) => (https ?? server).on("listening", resolve));
const port = (https ?? server).address().port;
console.log(`listening on ${tls ? "wss" : "ws"}://127.0.0.1:${port}`);
const stdin = createInterface({ input: process.stdin });
await new Promise((resolve) => stdin.once("line", resolve));
stdin.close();
process.stdin.destroy();

const ws = new WebSocket(`${tls ? "wss" : "ws"}://127.0.0.1:${port}/${scenario}`, {
  ...(tls ? { ...tlsOptions, ca: readFileSync(process.env.WSCOPE_TLS_CA), servername: "ws.test" } : {}),
  perMessageDeflate: deflate,
  generateMask: (mask) => randomFillSync(mask),
});
const received = [];
let wake = null;
ws.on("message", (data, isBinary) => {
  log.client.received_messages.push(messageRecord(data, isBinary));
  received.push(data);
  if (wake) wake();
});
const clientClosed = new Promise((resolve) => {
  ws.on("close", (code, reason) => {
    log.client.close_code = code;
    if (ws._closeFrameReceived) log.client.close_rcvd = { code, reason: reason.toString() };
    resolve();
  });
});
ws.on("error", (err) => {
  log.client.error = String(err);
});
await new Promise((resolve) => ws.on("open", resolve));

async function receive(n) {
  while (received.length < n) await new Promise((resolve) => (wake = resolve));
}

const doc = JSON.stringify({ type: "quote", symbol: "NODE", bid: 99.5, ask: 100.5, note: "y".repeat(60) });
const messages = [
  [doc, false],
  [doc, false],
  ["short", false],
  ["Grüße, 世界 🌍 — UTF-8 from Node, long enough to be compressed", false],
  ["", false],
  [Buffer.alloc(200, 1), true],
  ["server, your turn", false],
];
let expected = 0;
for (const [data, binary] of messages) {
  log.client.sent_messages.push(messageRecord(data, binary));
  ws.send(data, { binary });
  expected += data === "server, your turn" ? 2 : 1;
  await receive(expected);
}

// A fragmented message: ws's `fin: false` sends a fragment now.
const parts = ["frag-", "mented ".repeat(20), "from node"];
log.client.sent_messages.push(messageRecord(parts.join(""), false));
parts.forEach((part, i) => ws.send(part, { fin: i === parts.length - 1 }));
expected += 1;
await receive(expected);

const pong = new Promise((resolve) => ws.once("pong", resolve));
ws.ping("node-ping");
await pong;

ws.close(1000, "node done");
await clientClosed;
await serverClosed;
// What one side received as a close frame is what the other sent.
log.client.close_sent = log.server.close_rcvd;
log.server.close_sent = log.client.close_rcvd;
server.close();
https?.close();
const version = "ws " + createRequire(import.meta.url)("ws/package.json").version;
console.log(JSON.stringify({ library: { client: version, server: version }, ...log }));

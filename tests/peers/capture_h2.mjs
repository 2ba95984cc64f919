// The HTTP/2 side of capture_peers.py: Node.js's built-in `http2` (nghttp2)
// as a cleartext server and client in one process, for a capture of HTTP/2
// with prior knowledge (no TLS, no Upgrade: the client starts with the
// connection preface). No npm package is needed.
//
// Usage: node capture_h2.mjs SCENARIO
//   prints "listening on http://127.0.0.1:PORT", waits for a line on stdin,
//   runs the scenario, prints the JSON log and exits.
//
// Scenarios:
//   h2-websocket  the server allows extended CONNECT (RFC 8441
//                 SETTINGS_ENABLE_CONNECT_PROTOCOL); once the client has
//                 that setting it opens a stream with :method CONNECT,
//                 :protocol websocket, :path /chat; the server answers 200
//                 and echoes; a few bytes each way; the client ends the
//                 stream and closes the session.
//   h2c           a plain GET /plain over the same kind of connection; the
//                 server answers 200 with a short body; the client closes.
//
// The log: {"library": {"client", "server"}, "client": SIDE, "server": SIDE}
//   SIDE: {"address": "127.0.0.1:PORT" (its own end of the connection),
//          "request_headers": {...}, "response_headers": {...},
//          "remote_enable_connect_protocol": bool,
//          "sent": ["utf-8 text", ...], "received": ["utf-8 text", ...],
//          "error": str | null}
// `request_headers` are as the client sent them / the server got them
// (pseudo-headers included); the RFC 8441 CONNECT carries no DATA beyond
// the stream's bytes in `sent`.

import http2 from "node:http2";
import { createInterface } from "node:readline";

const scenario = process.argv[2];
if (scenario !== "h2-websocket" && scenario !== "h2c") {
  console.error(`unknown scenario ${scenario}`);
  process.exit(2);
}
const extended = scenario === "h2-websocket";

function newSide() {
  return {
    address: null,
    request_headers: null,
    response_headers: null,
    remote_enable_connect_protocol: null,
    sent: [],
    received: [],
    error: null,
  };
}
const log = { client: newSide(), server: newSide() };

// Headers as a plain object of strings (Node adds a symbol for sensitive ones).
function plain(headers) {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, String(v)]));
}

const server = http2.createServer({ settings: { enableConnectProtocol: extended } });
const serverDone = new Promise((resolve) => {
  server.on("session", (session) => {
    log.server.address = `${session.socket.localAddress}:${session.socket.localPort}`;
    session.on("remoteSettings", (settings) => {
      log.server.remote_enable_connect_protocol = Boolean(settings.enableConnectProtocol);
    });
    session.on("close", resolve);
    session.on("error", (err) => {
      log.server.error = String(err);
    });
  });
});
server.on("stream", (stream, headers) => {
  log.server.request_headers = plain(headers);
  const response = { ":status": 200 };
  if (!extended) response["content-type"] = "text/plain";
  log.server.response_headers = response;
  stream.respond(response);
  if (extended) {
    // The stream is the tunnel: echo what arrives, end when the client does.
    stream.on("data", (chunk) => {
      log.server.received.push(chunk.toString("utf8"));
      const echo = `echo: ${chunk.toString("utf8")}`;
      log.server.sent.push(echo);
      stream.write(echo);
    });
    stream.on("end", () => stream.end());
  } else {
    stream.resume();
    const body = "plain h2c answer\n";
    log.server.sent.push(body);
    stream.end(body);
  }
  stream.on("error", (err) => {
    log.server.error = String(err);
  });
});

await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const port = server.address().port;
console.log(`listening on http://127.0.0.1:${port}`);
const stdin = createInterface({ input: process.stdin });
await new Promise((resolve) => stdin.once("line", resolve));
stdin.close();
process.stdin.destroy();

const client = http2.connect(`http://127.0.0.1:${port}`);
client.on("error", (err) => {
  log.client.error = String(err);
});
// The server's SETTINGS must have arrived before an extended CONNECT: Node
// refuses `:protocol` until the peer allowed it.
const settings = await new Promise((resolve) => client.once("remoteSettings", resolve));
log.client.address = `${client.socket.localAddress}:${client.socket.localPort}`;
log.client.remote_enable_connect_protocol = Boolean(settings.enableConnectProtocol);

const authority = `127.0.0.1:${port}`;
const headers = extended
  ? { ":method": "CONNECT", ":protocol": "websocket", ":scheme": "http", ":path": "/chat", ":authority": authority }
  : { ":method": "GET", ":scheme": "http", ":path": "/plain", ":authority": authority };
log.client.request_headers = headers;
const stream = client.request(headers, { endStream: !extended });
stream.on("error", (err) => {
  log.client.error = String(err);
});
log.client.response_headers = plain(await new Promise((resolve) => stream.once("response", resolve)));

let wake = null;
stream.on("data", (chunk) => {
  log.client.received.push(chunk.toString("utf8"));
  if (wake) wake();
});
const ended = new Promise((resolve) => stream.on("end", resolve));
if (extended) {
  for (const text of ["hello over h2", "second message", "bye"]) {
    const before = log.client.received.length;
    log.client.sent.push(text);
    stream.write(text);
    while (log.client.received.length === before) await new Promise((resolve) => (wake = resolve));
  }
  stream.end();
}
await ended;
await new Promise((resolve) => client.close(resolve));
await serverDone;
await new Promise((resolve) => server.close(resolve));
const version = `node ${process.version} http2 (nghttp2 ${process.versions.nghttp2})`;
console.log(JSON.stringify({ library: { client: version, server: version }, ...log }));

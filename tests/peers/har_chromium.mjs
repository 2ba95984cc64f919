// Headless Chromium (Debian's package) recorded as HAR by the npm
// `chrome-har-capturer` package through the DevTools protocol, for
// crates/wscope/tests/har.rs.
//
// Chromium is started here with --remote-debugging-port on 127.0.0.1 (the
// port it picked is read from its "DevTools listening on" line), and a
// small HTTP server on 127.0.0.1 serves the page. The page's script opens
// a WebSocket to the server given with --ws (tests/peers/ws_server.mjs: a
// Node `ws` echo server with permessage-deflate), offering a subprotocol,
// with a path and a query; it sends texts, a JSON document and a binary
// message one at a time, each after the echo of the one before, then
// closes with 1000. chrome-har-capturer loads the page; its postHook waits
// until the page says it is done (the frames keep being recorded until
// then) and returns the page's own log of what it sent and received.
//
// Usage: node har_chromium.mjs --ws ws://127.0.0.1:PORT --out FILE.har
//                              --profile DIR (Chromium's profile, left there:
//                              its helper processes may still be writing)
// Prints one JSON object: {"chromium": VERSION, "page": URL, "protocol":
// and "extensions": as the page's WebSocket reported them, "sent": [...],
// "received": [...], "close_code": N}; each message is {"opcode": "text",
// "text": ...} or {"opcode": "binary", "base64": ...}.

import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import CHC from "chrome-har-capturer";

const options = {};
for (let i = 2; i < process.argv.length; i += 2) {
  options[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
}
if (!options.ws || !options.out || !options.profile) {
  console.error("usage: node har_chromium.mjs --ws ws://127.0.0.1:PORT --out FILE.har --profile DIR");
  process.exit(2);
}

const page = `<!doctype html>
<meta charset="utf-8">
<title>wscope har</title>
<script>
  const log = { protocol: null, extensions: null, sent: [], received: [], close_code: null };
  window.wscopeLog = log;
  const b64 = (bytes) => btoa(String.fromCharCode(...bytes));
  const doc = JSON.stringify({ type: "order", id: 42, items: ["a", "b"] });
  const messages = ["hello from chromium", doc, "Grüße, 世界 🌍", new Uint8Array([0, 1, 2, 250, 251, 255])];
  const ws = new WebSocket(${JSON.stringify(options.ws)} + "/chat?room=7&who=har", ["chat.v1", "chat.v0"]);
  ws.binaryType = "arraybuffer";
  let next = 0;
  function send() {
    const m = messages[next++];
    log.sent.push(typeof m === "string" ? { opcode: "text", text: m } : { opcode: "binary", base64: b64(m) });
    ws.send(m);
  }
  ws.onopen = () => { log.protocol = ws.protocol; log.extensions = ws.extensions; send(); };
  ws.onmessage = (e) => {
    log.received.push(typeof e.data === "string"
      ? { opcode: "text", text: e.data }
      : { opcode: "binary", base64: b64(new Uint8Array(e.data)) });
    if (next < messages.length) send(); else ws.close(1000, "page done");
  };
  ws.onclose = (e) => { log.close_code = e.code; document.title = "done"; };
</script>`;

const server = http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  res.end(page);
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const pageUrl = `http://127.0.0.1:${server.address().port}/`;

const profile = options.profile;
fs.mkdirSync(profile, { recursive: true });
const chromium = spawn(
  "/usr/bin/chromium",
  [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    `--user-data-dir=${profile}`,
    "about:blank",
  ],
  { stdio: ["ignore", "ignore", "pipe"] },
);
let result;
try {
  const port = await new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`chromium named no DevTools port:\n${seen}`)), 30000);
    chromium.on("exit", (code) => reject(new Error(`chromium exited (${code}):\n${seen}`)));
    chromium.stderr.on("data", (chunk) => {
      seen += chunk;
      const found = /DevTools listening on ws:\/\/127\.0\.0\.1:(\d+)\//.exec(seen);
      if (found) {
        clearTimeout(timer);
        resolve(Number(found[1]));
      }
    });
  });
  const version = await (await fetch(`http://127.0.0.1:${port}/json/version`)).json();
  const har = await new Promise((resolve, reject) => {
    const run = CHC.run([pageUrl], {
      host: "127.0.0.1",
      port,
      timeout: 30000,
      // After the load event: wait for the page's WebSocket to be closed,
      // so every frame is in the HAR, and hand back what the page saw.
      postHook: async (url, client) => {
        for (let i = 0; i < 300; i++) {
          const { result } = await client.Runtime.evaluate({
            expression: "document.title === 'done' ? JSON.stringify(window.wscopeLog) : ''",
          });
          if (result.value) return JSON.parse(result.value);
          await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error("the page's WebSocket did not finish in 30 s");
      },
    });
    run.on("fail", (url, err) => reject(new Error(`chrome-har-capturer failed on ${url}: ${err}`)));
    run.on("har", resolve);
  });
  fs.writeFileSync(options.out, JSON.stringify(har, null, 2));
  const seen = har.log.pages[0]?._user;
  if (!seen) throw new Error("the HAR has no page (chrome-har-capturer failed)");
  result = { chromium: version.Browser, page: pageUrl, ...seen };
} finally {
  // Nothing left running: Chromium is waited for.
  if (chromium.exitCode === null && chromium.signalCode === null) {
    const exited = new Promise((resolve) => chromium.once("exit", resolve));
    chromium.kill();
    await exited;
  }
  server.close();
}
console.log(JSON.stringify(result));
process.exit(0);

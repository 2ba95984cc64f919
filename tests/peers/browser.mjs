// Headless Chromium (Debian's package, driven by playwright-core) through
// `wscope proxy --forward`: loads an https page from a local test server
// (Node https + ws), whose script opens a wss:// WebSocket to the same
// server, sends a message and shows the echo. Chromium trusts wscope's CA
// by its public key (--ignore-certificate-errors-spki-list), so the TLS it
// sees is wscope's interception.
//
// Usage: node browser.mjs --proxy http://127.0.0.1:PORT --cert CERT --key KEY
//                         --ca WSCOPE_CA --screenshot FILE.png
// Prints one JSON object: {"shown": "...", "url": "..."}.

import crypto from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import { chromium } from "playwright-core";
import { WebSocketServer } from "ws";

const options = {};
for (let i = 2; i < process.argv.length; i += 2) {
  options[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
}

const page = `<!doctype html>
<meta charset="utf-8">
<title>wscope browser test</title>
<h1>wscope: a page loaded through the proxy</h1>
<p>WebSocket: <span id="state">connecting</span></p>
<p>Echo: <output id="out"></output></p>
<script>
  const ws = new WebSocket("wss://" + location.host + "/ws", "chat.v1");
  ws.onopen = () => { document.getElementById("state").textContent = "open (" + ws.protocol + ")"; ws.send("hello from chromium"); };
  ws.onmessage = (e) => { document.getElementById("out").textContent = e.data; ws.close(1000, "page done"); };
  ws.onclose = (e) => { document.getElementById("state").textContent = "closed " + e.code; };
</script>`;

const server = https.createServer(
  { cert: fs.readFileSync(options.cert), key: fs.readFileSync(options.key) },
  (req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(page);
  },
);
const wss = new WebSocketServer({ server, path: "/ws", handleProtocols: (p) => (p.has("chat.v1") ? "chat.v1" : false) });
wss.on("connection", (ws) => ws.on("message", (data) => ws.send("echo: " + data.toString())));
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const port = server.address().port;

const ca = new crypto.X509Certificate(fs.readFileSync(options.ca));
const spki = crypto
  .createHash("sha256")
  .update(ca.publicKey.export({ type: "spki", format: "der" }))
  .digest("base64");

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
    `--proxy-server=${options.proxy}`,
    // Chromium skips proxies for loopback unless told not to.
    "--proxy-bypass-list=<-loopback>",
    `--ignore-certificate-errors-spki-list=${spki}`,
  ],
});
let result;
try {
  const tab = await browser.newPage();
  const url = `https://localhost:${port}/`;
  await tab.goto(url, { timeout: 30000 });
  await tab.waitForFunction(() => document.getElementById("out").textContent.length > 0, null, { timeout: 30000 });
  await tab.waitForFunction(() => document.getElementById("state").textContent.startsWith("closed"), null, { timeout: 10000 });
  result = {
    shown: await tab.textContent("#out"),
    state: await tab.textContent("#state"),
    url,
  };
  if (options.screenshot) await tab.screenshot({ path: options.screenshot });
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify(result));
process.exit(0);

// A Node.js `ws` echo server with permessage-deflate, for tests that need a
// server nobody here wrote. Prints "listening on ws://127.0.0.1:PORT" first.
//
// Usage: node ws_server.mjs [--subprotocol NAME]

import { WebSocketServer } from "ws";

const args = process.argv.slice(2);
const subprotocol = args[0] === "--subprotocol" ? args[1] : null;

const server = new WebSocketServer({
  host: "127.0.0.1",
  port: 0,
  perMessageDeflate: true,
  handleProtocols: (offered) => (subprotocol && offered.has(subprotocol) ? subprotocol : false),
});
server.on("listening", () => {
  console.log(`listening on ws://127.0.0.1:${server.address().port}`);
});
server.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on("error", () => {});
});

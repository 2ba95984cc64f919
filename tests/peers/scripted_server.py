"""A Python `websockets` server with a scripted conversation, to be
recorded (through `wscope proxy --record`) and then served back by
`wscope serve --replay` (crates/wscope/tests/serve_replay.rs).

Prints "listening on ws://127.0.0.1:PORT" as its first line. On every
connection it greets the client unprompted, then answers JSON messages:
  {"op": "login", "user": U, ...}      -> {"type": "welcome", "user": U}
  {"op": "subscribe", "topic": T, ...} -> {"type": "subscribed", "topic": T},
                                          {"type": "quote", "topic": T, "price": 101.5}
  {"op": "bye", ...}                   -> {"type": "bye"}, then close 4000 "done"
  anything else                        -> {"type": "error", "got": MESSAGE}
Runs until killed.
"""

import asyncio
import json

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


async def handler(ws):
    await ws.send(json.dumps({"type": "hello", "server": "scripted"}))
    try:
        async for message in ws:
            try:
                request = json.loads(message)
            except ValueError:
                request = {}
            op = request.get("op") if isinstance(request, dict) else None
            if op == "login":
                await ws.send(json.dumps({"type": "welcome", "user": request.get("user")}))
            elif op == "subscribe":
                topic = request.get("topic")
                await ws.send(json.dumps({"type": "subscribed", "topic": topic}))
                await ws.send(json.dumps({"type": "quote", "topic": topic, "price": 101.5}))
            elif op == "bye":
                await ws.send(json.dumps({"type": "bye"}))
                await ws.close(code=4000, reason="done")
                return
            else:
                await ws.send(json.dumps({"type": "error", "got": message}))
    except ConnectionClosed:
        pass


async def main() -> None:
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on ws://127.0.0.1:{port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())

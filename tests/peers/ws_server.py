"""A Python `websockets` server for testing `wscope connect`.

Prints "listening on ws://127.0.0.1:PORT" as its first line, then serves:
  /echo       echo every message
  /close4000  send "welcome", then close with 4000 "bye"
  /drop       send "welcome", then drop TCP without a close frame (1006)
  /pingme     send a ping and report the pong in a message
  /forbidden  refuse the upgrade with 403 and a body
Runs until killed.
"""

import asyncio
from http import HTTPStatus

from websockets.asyncio.server import serve


def process_request(connection, request):
    if request.path == "/forbidden":
        return connection.respond(HTTPStatus.FORBIDDEN, "origin not allowed\n")
    return None


async def handler(ws):
    path = ws.request.path
    if path.startswith("/echo"):
        async for message in ws:
            await ws.send(message)
    elif path == "/close4000":
        await ws.send("welcome")
        await ws.close(code=4000, reason="bye")
    elif path == "/drop":
        await ws.send("welcome")
        await asyncio.sleep(0.1)
        ws.transport.abort()
    elif path == "/pingme":
        waiter = await ws.ping(b"x")
        latency = await asyncio.wait_for(waiter, 5)
        await ws.send(f"pong received after {latency >= 0}")
        await ws.close()
    else:
        await ws.close(code=1008, reason="unknown path")


async def main() -> None:
    async with serve(handler, "127.0.0.1", 0, process_request=process_request) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on ws://127.0.0.1:{port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())

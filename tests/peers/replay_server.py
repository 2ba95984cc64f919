"""A Python `websockets` server for the `wscope replay` and `wscope diff` tests.

Prints "listening on ws://127.0.0.1:PORT" as its first line, then serves a
small JSON protocol whose behaviour the path picks:

  on open      the server sends {"type":"hello","session":ID}
  a request    {"type":"get","id":N,"session":ID} is answered with
               {"type":"result","id":N,"value":N*10,"session":ID}

  /normal         as above; ID is the same fixed value on every connection
  /changed        as /normal, but request 2 gets value 21 instead of 20
  /fresh-session  a new random ID per connection; a request carrying any
                  other ID gets {"type":"error","id":N,"error":"unknown session"}
  /heartbeat      as /normal, plus {"type":"heartbeat"} after the hello and
                  after every answer
  /slow           as /normal, each answer sent DELAY seconds (?delay=, 0.3)
                  after its request arrived
  /hold           as /normal, but no answer is sent before REQUESTS requests
                  (?requests=, 3) have arrived; then all of them, in order
  /close-early    sends the hello, then closes with 4001 "early"
  /auth           as /normal, only with "Authorization: Bearer x" (else 401)

/slow and /hold print one JSON line per step on stdout, in the order the
server saw them: {"conn": K, "event": "received"|"sending", "id": N}, and
{"conn": K, "event": "closed"} at the end. Arrivals are read (and logged)
by their own task, apart from the answers, so the log shows when each
request reached the server, not when the server got round to it.
Runs until killed.
"""

import asyncio
import itertools
import json
import secrets
import sys
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

FIXED_SESSION = "s-7f3a21"
CONNECTIONS = itertools.count(1)


def log(**fields):
    print(json.dumps(fields), flush=True)


def answer(request, session, mode):
    """The answer to one request, or None for a message that is not one."""
    if request.get("type") != "get":
        return None
    n = request.get("id")
    if mode == "fresh-session" and request.get("session") != session:
        return {"type": "error", "id": n, "error": "unknown session"}
    value = n * 10 if isinstance(n, int) else None
    if mode == "changed" and n == 2:
        value += 1
    return {"type": "result", "id": n, "value": value, "session": session}


def process_request(connection, request):
    path = urlsplit(request.path).path
    if path == "/auth" and request.headers.get("Authorization") != "Bearer x":
        return connection.respond(HTTPStatus.UNAUTHORIZED, "Authorization: Bearer x required\n")
    return None


async def handler(ws):
    url = urlsplit(ws.request.path)
    mode = url.path.strip("/")
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    conn = next(CONNECTIONS)
    session = secrets.token_hex(6) if mode == "fresh-session" else FIXED_SESSION
    await ws.send(json.dumps({"type": "hello", "session": session}))
    try:
        if mode == "close-early":
            await ws.close(code=4001, reason="early")
        elif mode in ("slow", "hold"):
            await logged(ws, conn, mode, query)
        else:
            if mode == "heartbeat":
                await ws.send(json.dumps({"type": "heartbeat"}))
            async for message in ws:
                reply = answer(json.loads(message), session, mode)
                if reply is not None:
                    await ws.send(json.dumps(reply))
                    if mode == "heartbeat":
                        await ws.send(json.dumps({"type": "heartbeat"}))
    except ConnectionClosed:
        pass


async def logged(ws, conn, mode, query):
    """/slow and /hold: arrivals logged as they come, answers sent apart."""
    delay = float(query.get("delay", "0.3"))
    hold = int(query.get("requests", "3"))
    pending = asyncio.Queue()
    arrived = 0
    all_arrived = asyncio.Event()

    async def answers():
        while True:
            request, at = await pending.get()
            if mode == "slow":
                await asyncio.sleep(max(0.0, at + delay - asyncio.get_running_loop().time()))
            else:
                await all_arrived.wait()
            reply = answer(request, FIXED_SESSION, "normal")
            # Logged before the bytes go out, so nothing the client sends
            # in return can be logged ahead of it.
            log(conn=conn, event="sending", id=request.get("id"))
            await ws.send(json.dumps(reply))

    sender = asyncio.create_task(answers())
    try:
        async for message in ws:
            request = json.loads(message)
            log(conn=conn, event="received", id=request.get("id"))
            arrived += 1
            if arrived >= hold:
                all_arrived.set()
            await pending.put((request, asyncio.get_running_loop().time()))
    finally:
        sender.cancel()
        log(conn=conn, event="closed")


async def main():
    async with serve(handler, "127.0.0.1", 0, process_request=process_request) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on ws://127.0.0.1:{port}", flush=True)
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)

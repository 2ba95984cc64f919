"""A Python `websockets` server that behaves like a real service a client
must reconnect to, for `wscope connect --reconnect`.

Prints "listening on ws://127.0.0.1:PORT" as its first line, then one JSON
line per connection attempt, as it ends (the test reads them):

  --mode session  the first message must be {"op": "auth", "token": TOKEN}
                  (answered {"ok": true}), the second {"op": "subscribe"}
                  (answered {"subscribed": true}); then it sends --ticks
                  messages and drops the connection without a close frame.
                  A wrong first or second message is closed with 4001 or
                  4002. Reports {"conn": N, "auth": bool, "subscribed": bool}.
  --mode token    accepts the upgrade only with the header X-Token equal to
                  the token it wrote last to --token-file; on every accepted
                  connection it writes a new random token there (so only a
                  client that reads the file afresh gets in), says "welcome"
                  and drops the connection after 200 ms. Reports
                  {"conn": N, "accepted": bool}.
Runs until killed.
"""

import argparse
import asyncio
import json
import secrets
import sys
from http import HTTPStatus

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


def report(**fields):
    print(json.dumps(fields), flush=True)


class Session:
    def __init__(self, token, ticks):
        self.token = token
        self.ticks = ticks
        self.count = 0

    async def handler(self, ws):
        self.count += 1
        conn = self.count
        auth = subscribed = False
        try:
            first = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if first != {"op": "auth", "token": self.token}:
                await ws.close(4001, "authenticate first")
                return
            auth = True
            await ws.send(json.dumps({"ok": True}))
            second = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if second.get("op") != "subscribe":
                await ws.close(4002, "subscribe next")
                return
            subscribed = True
            await ws.send(json.dumps({"subscribed": True}))
            for n in range(self.ticks):
                await ws.send(json.dumps({"tick": n}))
            await asyncio.sleep(0.1)
            ws.transport.abort()
        except (ConnectionClosed, asyncio.TimeoutError, ValueError):
            pass
        finally:
            report(conn=conn, auth=auth, subscribed=subscribed)


class Token:
    def __init__(self, path):
        self.path = path
        self.count = 0
        self.rotate()

    def rotate(self):
        self.expected = secrets.token_hex(8)
        with open(self.path, "w") as f:
            f.write(self.expected + "\n")

    def process_request(self, connection, request):
        self.count += 1
        if request.headers.get("X-Token") != self.expected:
            report(conn=self.count, accepted=False)
            return connection.respond(HTTPStatus.UNAUTHORIZED, "stale token\n")
        report(conn=self.count, accepted=True)
        self.rotate()
        return None

    async def handler(self, ws):
        try:
            await ws.send("welcome")
            await asyncio.sleep(0.2)
            ws.transport.abort()
        except ConnectionClosed:
            pass


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["session", "token"], required=True)
    parser.add_argument("--token", default="t0k")
    parser.add_argument("--ticks", type=int, default=3)
    parser.add_argument("--token-file")
    args = parser.parse_args()
    if args.mode == "session":
        session = Session(args.token, args.ticks)
        handler, process_request = session.handler, None
    else:
        if not args.token_file:
            sys.exit("--mode token needs --token-file")
        token = Token(args.token_file)
        handler, process_request = token.handler, token.process_request
    async with serve(handler, "127.0.0.1", 0, process_request=process_request) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on ws://127.0.0.1:{port}", flush=True)
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    asyncio.run(main())

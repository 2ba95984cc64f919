"""A Python `websockets` server for testing `wscope connect`.

Prints "listening on ws://127.0.0.1:PORT" as its first line, then serves:
  /echo       echo every message
  /close4000  send "welcome", then close with 4000 "bye"
  /fragments  send one text message in two fragments, then close
  /drop       send "welcome", then drop TCP without a close frame (1006)
  /pingme     send a ping and report the pong in a message
  /forbidden  refuse the upgrade with 403 and a body
  /origin     echo, but only for Origin http://allowed.test (else 403)
  /subprotocol echo, only when chat.v1 is offered (and select it; else 400)
  /header     echo, only with X-Api-Key: secret (else 401)
  /basic      echo, only with HTTP Basic user / pa:ss (else 401)
Runs until killed.

With --tls DIR it serves wss:// with a certificate for localhost (only)
issued by a throwaway CA (trustme), and writes DIR/ca.pem plus a
client certificate (DIR/client-cert.pem, DIR/client-key.pem). With
--require-client-cert it also asks for and checks a client certificate;
--expired serves a certificate that expired yesterday, --expires-in-days N
one that expires in N days. --intermediate issues the server's
certificate from an intermediate CA and serves both; --leaf-only with it
serves the server's certificate alone (an incomplete chain).
"""

import argparse
import json
import asyncio
import ssl
from http import HTTPStatus
from pathlib import Path

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


def select_subprotocol(connection, subprotocols):
    # Select chat.v1 when offered; otherwise go on without a subprotocol.
    return "chat.v1" if "chat.v1" in subprotocols else None


def process_request(connection, request):
    path, headers = request.path, request.headers
    if path == "/forbidden":
        return connection.respond(HTTPStatus.FORBIDDEN, "origin not allowed\n")
    if path == "/origin" and headers.get("Origin") != "http://allowed.test":
        return connection.respond(HTTPStatus.FORBIDDEN, "origin not allowed\n")
    if path == "/subprotocol" and "chat.v1" not in headers.get("Sec-WebSocket-Protocol", ""):
        return connection.respond(HTTPStatus.BAD_REQUEST, "subprotocol chat.v1 required\n")
    if path == "/basic" and headers.get("Authorization") != "Basic dXNlcjpwYTpzcw==":
        return connection.respond(HTTPStatus.UNAUTHORIZED, "Basic user:pa:ss required\n")
    if path == "/header" and headers.get("X-Api-Key") != "secret":
        return connection.respond(HTTPStatus.UNAUTHORIZED, "X-Api-Key required\n")
    return None


async def handler(ws):
    path = ws.request.path
    if path.startswith("/echo") or path in ("/origin", "/subprotocol", "/header", "/basic"):
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass  # a client closing with an error code is a test case here
    elif path == "/ack":
        # Answers every message with its length, never with the message.
        try:
            async for message in ws:
                await ws.send(json.dumps({"ack": len(message)}))
        except ConnectionClosed:
            pass
    elif path == "/fragments":
        await ws.send(["frag", "ment"])
        await ws.close()
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


def tls_context(
    directory: Path,
    require_client_cert: bool,
    expired: bool,
    expires_in_days: int | None = None,
    intermediate: bool = False,
    leaf_only: bool = False,
) -> ssl.SSLContext:
    import datetime

    import trustme

    ca = trustme.CA()
    directory.mkdir(parents=True, exist_ok=True)
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    client = ca.issue_cert("wscope-test-client")
    client.cert_chain_pems[0].write_to_path(str(directory / "client-cert.pem"))
    client.private_key_pem.write_to_path(str(directory / "client-key.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if expired:
        now = datetime.datetime.now(datetime.timezone.utc)
        leaf = ca.issue_cert(
            "localhost",
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        )
    elif expires_in_days is not None:
        now = datetime.datetime.now(datetime.timezone.utc)
        leaf = ca.issue_cert(
            "localhost",
            not_before=now - datetime.timedelta(days=1),
            not_after=now + datetime.timedelta(days=expires_in_days),
        )
    elif intermediate:
        leaf = ca.create_child_ca().issue_cert("localhost")
    else:
        leaf = ca.issue_cert("localhost")
    if leaf_only:
        cert = directory / "leaf.pem"
        key = directory / "leaf-key.pem"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        context.load_cert_chain(str(cert), str(key))
    else:
        leaf.configure_cert(context)
    if require_client_cert:
        ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tls", type=Path)
    parser.add_argument("--require-client-cert", action="store_true")
    parser.add_argument("--expired", action="store_true")
    parser.add_argument("--expires-in-days", type=int)
    parser.add_argument("--intermediate", action="store_true")
    parser.add_argument("--leaf-only", action="store_true")
    args = parser.parse_args()
    context = (
        tls_context(
            args.tls,
            args.require_client_cert,
            args.expired,
            args.expires_in_days,
            args.intermediate,
            args.leaf_only,
        )
        if args.tls
        else None
    )
    scheme = "wss" if context else "ws"
    async with serve(
        handler,
        "127.0.0.1",
        0,
        process_request=process_request,
        ssl=context,
        select_subprotocol=select_subprotocol,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on {scheme}://127.0.0.1:{port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())

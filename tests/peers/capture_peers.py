"""Real WebSocket peers talking on loopback while tcpdump captures them.

Usage:
  capture_peers.py SCENARIO --out FILE.pcap --log LOG.json [--count N] [--mask-seed N]
  capture_peers.py SCENARIO --external-capture --log LOG.json [--count N] [--mask-seed N]
  capture_peers.py --list

Runs one SCENARIO between real peers (Python `websockets`, Node.js `ws`
through capture_peers.mjs, or Node.js `http2` through capture_h2.mjs) on
127.0.0.1, on a port the kernel picks (port 0, so never 80: a reader must
find WebSockets on any port), while
`tcpdump -i lo -U -w FILE 'port PORT'` captures it. Then writes LOG.json:
what each peer library itself sent and received, and prints one line,
"captured SCENARIO on port PORT: N packets", on stdout. Exits non-zero
(with the reason on stderr) if anything went wrong, including a packet the
kernel dropped before tcpdump saw it.

It waits for events, never for time: tcpdump's "listening on" line before
the peers start, and at the end one UDP datagram (payload
`wscope-capture-marker`) sent to the captured port, the pcap polled until
that datagram is in it, so every packet before it is in the file too. The
marker stays in the capture: readers must skip packets that are not TCP.

LOG.json:
  {"scenario", "port", "library": {"client": "...", "server": "..."}, "mask_seed": int | null,
   "expect": {"ended": "close_handshake" | "fin" | "rst", "by": "client" | "server" | "unknown",
              "code": int | null, "handshake": "ok" | "refused"},
   "client": PEER, "server": PEER}
  PEER: {"sent_frames": [FRAME], "received_frames": [FRAME],
         "sent_messages": [MSG], "received_messages": [MSG],
         "close_sent": {"code", "reason"} | null, "close_rcvd": ... | null,
         "close_code": int | null, "error": str | null}
  FRAME: {"opcode": "text", "opcode_bits": 1, "fin": true, "rsv1": false,
          "mask": "hex" | null, "masked": bool, "len": int, "base64": "..."}
          -- as on the wire: unmasked, still compressed (recorded inside the
          library, after its permessage-deflate encoder / before its decoder).
          `mask` is the key the library drew (sent frames of a client only).
  MSG: {"opcode": "text" | "binary", "text": "..." | "base64": "..."}

Node peers record sent frames only (ws's public `Sender.frame` and the
`generateMask` option); every frame on the wire is some peer's sent frame.

Scenarios (--list prints them):
  deflate              websockets both sides, permessage-deflate with context
                       takeover: repeated texts, UTF-8, binary, empty, a 100 KB
                       incompressible binary, ping/pong, client closes 1000
  no-context-takeover  the same messages with client_no_context_takeover and
                       server_no_context_takeover negotiated
  fragmented           messages sent as fragments both ways (iterables), a
                       ping between fragments, compressed and not
  pipelined            --count (default 3000) messages sent without waiting,
                       echoed, then a clean close
  node-deflate         Node.js ws client and server, perMessageDeflate both
                       ways with context takeover, a fragmented compressed
                       message, ping/pong, client closes 1000
  close-clean          the server closes with 4000 "server done"
  close-drop           the server drops TCP without a close frame (FIN, 1006)
  close-reset          the server resets TCP (SO_LINGER 0: RST, 1006)
  refused              the server refuses the upgrade with 403
  tls                  websockets both sides over TLS: a certificate from
                       trustme for ws.test, the client connects to 127.0.0.1
                       with server_hostname ws.test (the SNI) and ALPN
                       http/1.1; a few messages, client closes 1000. The log
                       adds "tls": {"client" (its address), "sni",
                       "alpn_offered", "alpn_selected", "version"} as the
                       client's ssl object saw them
  tls12                the tls scenario with TLS 1.2 and ECDHE AES-GCM only
  tls12-cbc            ... with TLS 1.2 and ECDHE AES-CBC (not decryptable)
  tls12-rsa            ... with TLS 1.2, an RSA certificate and RSA key
                       exchange (TLS_RSA_WITH_AES_128_GCM_SHA256)
  node-tls13-aes128, node-tls13-chacha, node-tls12-aes256, node-tls12-chacha
                       node-deflate over TLS (capture_peers.mjs), that
                       version and cipher suite only, a trustme certificate
                       for ws.test
  chromium             headless Chromium (capture_chromium.mjs) loads an https
                       page from Node.js https + ws and talks wss:// to it
                       (SNI ws.test, permessage-deflate); its secrets from
                       --ssl-key-log-file (--keylog). The log has messages
                       and close codes, no frames
  openssl-key-update   Python websockets over TLS 1.3, the client `openssl
                       s_client` sending hand-made frames, and a KeyUpdate
                       (s_client's `K` command) before each message after
                       the first: three texts echoed. The log has messages
                       only; the key log (--keylog) is s_client's
  h2-websocket         Node.js http2 (capture_h2.mjs), cleartext with prior
                       knowledge: an RFC 8441 extended CONNECT with
                       :protocol websocket to /chat, answered 200, a few
                       bytes each way, closed. The log is capture_h2.mjs's
  h2c                  the same, a plain GET /plain instead of the CONNECT

With --external-capture there is no tcpdump: the caller captures (the
live capture tests run `wscope capture`). Once the server listens, the
script prints "port PORT" on stdout and waits for a line on stdin before
the peers talk; at the end it writes LOG.json and prints
"ran SCENARIO on port PORT".

The TLS and HTTP/2 scenarios carry WebSocket (or nothing) that a capture
reader cannot decode: their "expect" says what it can tell instead
("handshake": "encrypted" or "http2").

--mask-seed N: the Python `websockets` client draws its masking keys from
random.Random(N) instead of os.urandom, and every payload is already fixed
(the 100 KB binary comes from random.Random(12)), so the WebSocket bytes of
the Python scenarios are the same on every run (TCP sequence numbers, ports,
times and the handshake's Sec-WebSocket-Key still differ). The LOG.json
"mask_seed" says which was used (null: os.urandom).

--keylog FILE: the TLS scenarios' session secrets are written there in the
NSS key log format (Python: the client context's keylog_filename; Node.js:
`node --tls-keylog=FILE`).
"""

import argparse
import asyncio
import base64
import json
import os
import random
import re
import signal
import socket
import struct
import sys
import types
from pathlib import Path

import websockets
import websockets.frames as wsframes
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame

MARKER = b"wscope-capture-marker"
HERE = Path(__file__).resolve().parent

# How each scenario ends, as the capture must tell it: `ended` (how the TCP
# connection ended), `by` (who sent the first close frame), `code` (1006:
# no close frame).
SCENARIOS = {
    "deflate": ("close_handshake", "client", 1000),
    "no-context-takeover": ("close_handshake", "client", 1000),
    "fragmented": ("close_handshake", "client", 1000),
    "pipelined": ("close_handshake", "client", 1000),
    "node-deflate": ("close_handshake", "client", 1000),
    "close-clean": ("close_handshake", "server", 4000),
    # No close frame: `by` names whose TCP went first, as the proxy does.
    "close-drop": ("fin", "server", 1006),
    "close-reset": ("rst", "server", 1006),
    "refused": ("fin", "unknown", None),
    "tls": ("close_handshake", "client", 1000),
    "tls12": ("close_handshake", "client", 1000),
    "tls12-cbc": ("close_handshake", "client", 1000),
    "tls12-rsa": ("close_handshake", "client", 1000),
    "node-tls13-aes128": ("close_handshake", "client", 1000),
    "node-tls13-chacha": ("close_handshake", "client", 1000),
    "node-tls12-aes256": ("close_handshake", "client", 1000),
    "node-tls12-chacha": ("close_handshake", "client", 1000),
    "chromium": ("close_handshake", "client", 1000),
    "openssl-key-update": ("fin", "client", 1006),
    "h2-websocket": ("fin", "unknown", None),
    "h2c": ("fin", "unknown", None),
}

# What a reader can see of each scenario's upgrade (LOG.json "expect.handshake").
HANDSHAKE = {
    "refused": "refused",
    "tls": "encrypted",
    "tls12": "encrypted",
    "tls12-cbc": "encrypted",
    "tls12-rsa": "encrypted",
    "node-tls13-aes128": "encrypted",
    "node-tls13-chacha": "encrypted",
    "node-tls12-aes256": "encrypted",
    "node-tls12-chacha": "encrypted",
    "chromium": "encrypted",
    "openssl-key-update": "encrypted",
    "h2-websocket": "http2",
    "h2c": "http2",
}

# The TLS scenario's server name: never resolved, only sent as the SNI.
TLS_SERVER_NAME = "ws.test"
TLS_ALPN = ["http/1.1"]


def new_peer():
    return {
        "sent_frames": [],
        "received_frames": [],
        "sent_messages": [],
        "received_messages": [],
        "close_sent": None,
        "close_rcvd": None,
        "close_code": None,
        "error": None,
    }


LOG = {"client": new_peer(), "server": new_peer()}


# --- frames as the library itself sees them -------------------------------
#
# A do-nothing extension appended to the list websockets applies: it runs
# after permessage-deflate when sending and before it when receiving, so it
# sees each frame as on the wire (unmasked). `mask=True` in serialize means
# the client side, in parse the server side.


class _Recorder(Extension):
    name = "x-wscope-recorder"  # never negotiated: only called by the hooks below

    def __init__(self, frames, masked):
        self.frames = frames
        self.masked = masked
        self.entry = None

    def _record(self, frame):
        self.entry = frame_record(frame, self.masked)
        self.frames.append(self.entry)
        return frame

    def encode(self, frame):
        return self._record(frame)

    def decode(self, frame, *, max_size=None):
        return self._record(frame)


def frame_record(frame, masked):
    data = bytes(frame.data)
    return {
        "opcode": frame.opcode.name.lower().replace("cont", "continuation"),
        "opcode_bits": int(frame.opcode),
        "fin": frame.fin,
        "rsv1": frame.rsv1,
        "mask": None,
        "masked": masked,
        "len": len(data),
        "base64": base64.b64encode(data).decode(),
    }


_last_mask = [None]
# Where the client's masking keys come from: the OS, as websockets does,
# unless --mask-seed makes them a fixed sequence.
_mask_source = [os.urandom]


def _token_bytes(n):
    key = _mask_source[0](n)
    _last_mask[0] = key
    return key


def install_frame_hooks(mask_seed=None):
    if mask_seed is not None:
        # Masked random payloads hold, now and then, bytes that look like a
        # run of frame headers; a test that cuts a capture inside one must
        # see the same bytes every run, so that it passes or fails for good.
        _mask_source[0] = random.Random(mask_seed).randbytes
    wsframes.secrets = types.SimpleNamespace(token_bytes=_token_bytes)
    serialize = Frame.serialize
    parse = Frame.parse.__func__

    def recording_serialize(self, *, mask, extensions=None):
        side = "client" if mask else "server"
        recorder = _Recorder(LOG[side]["sent_frames"], mask)
        out = serialize(self, mask=mask, extensions=[*(extensions or []), recorder])
        if mask:
            recorder.entry["mask"] = _last_mask[0].hex()
        return out

    def recording_parse(cls, read_exact, *, mask, max_size=None, extensions=None):
        side = "server" if mask else "client"
        recorder = _Recorder(LOG[side]["received_frames"], mask)
        return (
            yield from parse(
                cls,
                read_exact,
                mask=mask,
                max_size=max_size,
                extensions=[*(extensions or []), recorder],
            )
        )

    Frame.serialize = recording_serialize
    Frame.parse = classmethod(recording_parse)


def message_record(data):
    if isinstance(data, str):
        return {"opcode": "text", "text": data}
    return {"opcode": "binary", "base64": base64.b64encode(bytes(data)).decode()}


def close_record(close):
    return None if close is None else {"code": close.code, "reason": close.reason}


def finish_peer(side, ws):
    peer = LOG[side]
    peer["close_sent"] = close_record(ws.protocol.close_sent)
    peer["close_rcvd"] = close_record(ws.protocol.close_rcvd)
    peer["close_code"] = ws.close_code


# --- the messages ---------------------------------------------------------


def chat_messages():
    """Messages that show context takeover: the repeats compress to a few
    bytes only when the window carries over from the message before."""
    doc = json.dumps({"type": "trade", "symbol": "WSCOPE", "price": 101.25, "qty": 7, "note": "x" * 40})
    rng = random.Random(12)
    return [
        doc,
        doc,
        doc,
        "Grüße, 世界 🌍 — UTF-8 in a compressed text",
        b"\x00\x01\x02\x03\xff\xfe" * 20,
        "",
        bytes(rng.getrandbits(8) for _ in range(100_000)),  # over 64 KiB, incompressible
        "tail " * 2000,
        doc,
    ]


async def send_logged(ws, side, message):
    LOG[side]["sent_messages"].append(message_record(message))
    await ws.send(message)


async def recv_logged(ws, side):
    message = await ws.recv()
    LOG[side]["received_messages"].append(message_record(message))
    return message


# --- scenarios: server handlers and clients --------------------------------


async def echo_handler(ws):
    try:
        while True:
            message = await recv_logged(ws, "server")
            await send_logged(ws, "server", message)
    except ConnectionClosed:
        pass
    finish_peer("server", ws)


async def fragments_handler(ws):
    try:
        while True:
            message = await recv_logged(ws, "server")
            if isinstance(message, str):
                chunks = [message[i : i + 4] for i in range(0, len(message), 4)] or [""]
            else:
                chunks = [message[i : i + 3] for i in range(0, len(message), 3)] or [b""]
            LOG["server"]["sent_messages"].append(message_record(message))
            await ws.send(chunks)
    except ConnectionClosed:
        pass
    finish_peer("server", ws)


async def close_clean_handler(ws):
    await recv_logged(ws, "server")
    await send_logged(ws, "server", "bye")
    await ws.close(4000, "server done")
    finish_peer("server", ws)


async def drop_handler(ws, reset):
    await recv_logged(ws, "server")
    await send_logged(ws, "server", "welcome")
    # Wait until the client has read "welcome" and said so, so nothing is
    # unread in the server's socket: then close() sends FIN, not RST.
    await recv_logged(ws, "server")
    if reset:
        ws.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
    ws.transport.abort()
    # Until websockets has seen the connection go, returning would make it
    # serialize a close frame that never reaches the wire.
    await ws.wait_closed()
    finish_peer("server", ws)


async def client_chat(ws):
    for message in chat_messages():
        await send_logged(ws, "client", message)
        await recv_logged(ws, "client")
    pong = await ws.ping(b"p1")
    await pong
    await ws.close(1000, "client done")


async def client_fragments(ws):
    async def with_ping():
        yield "frag"
        await ws.ping(b"mid")
        yield "mented "
        yield "with a ping"

    messages = [["Hel", "lo ", "wörld"], [b"\x00\x01", b"\x02", b"\x03\x04"], ["single"], ["x" * 300, "y" * 300]]
    for chunks in messages:
        LOG["client"]["sent_messages"].append(message_record(chunks[0][:0].join(chunks)))
        await ws.send(chunks)
        await recv_logged(ws, "client")
    LOG["client"]["sent_messages"].append(message_record("fragmented with a ping"))
    await ws.send(with_ping())
    await recv_logged(ws, "client")
    await ws.close(1000, "client done")


async def client_pipelined(ws, count):
    async def reader():
        for _ in range(count):
            await recv_logged(ws, "client")

    task = asyncio.create_task(reader())
    for i in range(count):
        await send_logged(ws, "client", f"message {i} " + "abc" * (i % 50))
    await task
    await ws.close(1000, "client done")


async def client_close_clean(ws):
    await send_logged(ws, "client", "hello")
    await recv_logged(ws, "client")
    try:
        await recv_logged(ws, "client")
    except ConnectionClosed:
        pass


async def client_drop(ws):
    await send_logged(ws, "client", "hello")
    await recv_logged(ws, "client")
    await send_logged(ws, "client", "got welcome")
    try:
        await recv_logged(ws, "client")
    except ConnectionClosed:
        pass


# TLS 1.2 scenarios: the client's cipher list, and whether the certificate
# has an RSA key (trustme's default is ECDSA).
TLS12 = {
    "tls12": ("ECDHE+AESGCM", False),
    "tls12-cbc": ("ECDHE-ECDSA-AES128-SHA256", False),
    "tls12-rsa": ("AES128-GCM-SHA256", True),
}


def tls_contexts(keylog=None, scenario="tls"):
    """A server context with a trustme certificate for ws.test, and a client
    context that trusts it and offers ALPN http/1.1 (and logs its secrets
    to `keylog`); TLS 1.2 scenarios are held to their ciphers."""
    import ssl

    import trustme

    ciphers, rsa = TLS12.get(scenario, (None, False))
    ca = trustme.CA(key_type=trustme.KeyType.RSA) if rsa else trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if rsa:
        ca.issue_cert(TLS_SERVER_NAME, key_type=trustme.KeyType.RSA).configure_cert(server_ctx)
    else:
        ca.issue_cert(TLS_SERVER_NAME).configure_cert(server_ctx)
    server_ctx.set_alpn_protocols(TLS_ALPN)
    client_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_ctx)
    client_ctx.set_alpn_protocols(TLS_ALPN)
    if ciphers:
        client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        client_ctx.set_ciphers(ciphers)
        # Python's default server ciphers leave out RSA key exchange.
        server_ctx.set_ciphers(ciphers)
    if keylog:
        client_ctx.keylog_filename = str(keylog)
    return server_ctx, client_ctx


def tls_files(directory):
    """A trustme CA and a certificate for ws.test written as PEM files, for
    the Node.js peers: the environment capture_peers.mjs reads them from."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert(TLS_SERVER_NAME)
    paths = {
        "WSCOPE_TLS_CA": directory / "tls-ca.pem",
        "WSCOPE_TLS_CERT": directory / "tls-cert.pem",
        "WSCOPE_TLS_KEY": directory / "tls-key.pem",
    }
    ca.cert_pem.write_to_path(str(paths["WSCOPE_TLS_CA"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["WSCOPE_TLS_CERT"]))
    cert.private_key_pem.write_to_path(str(paths["WSCOPE_TLS_KEY"]))
    return {name: str(path) for name, path in paths.items()}


def tls_record(ws):
    ssl_object = ws.transport.get_extra_info("ssl_object")
    host, port = ws.transport.get_extra_info("sockname")[:2]
    return {
        "client": f"{host}:{port}",
        "sni": ssl_object.server_hostname,
        "alpn_offered": TLS_ALPN,
        "alpn_selected": ssl_object.selected_alpn_protocol(),
        "version": ssl_object.version(),
    }


async def client_tls(ws):
    LOG["tls"] = tls_record(ws)
    for message in ["hello over TLS", "Grüße über TLS", b"\x00\x01\x02 binary"]:
        await send_logged(ws, "client", message)
        await recv_logged(ws, "client")
    await ws.close(1000, "client done")


async def run_python(scenario, args, port_ready):
    server_kwargs, client_kwargs = {}, {}
    scheme = "ws"
    handler = echo_handler
    client = client_chat
    process_request = None
    if scenario == "no-context-takeover":
        server_kwargs["extensions"] = [
            ServerPerMessageDeflateFactory(server_no_context_takeover=True, client_no_context_takeover=True)
        ]
        client_kwargs["extensions"] = [
            ClientPerMessageDeflateFactory(server_no_context_takeover=True, client_no_context_takeover=True)
        ]
        server_kwargs["compression"] = client_kwargs["compression"] = None
    elif scenario == "fragmented":
        handler, client = fragments_handler, client_fragments
    elif scenario == "pipelined":
        client = lambda ws: client_pipelined(ws, args.count)  # noqa: E731
    elif scenario == "close-clean":
        handler, client = close_clean_handler, client_close_clean
    elif scenario in ("close-drop", "close-reset"):
        reset = scenario == "close-reset"
        handler = lambda ws: drop_handler(ws, reset)  # noqa: E731
        client = client_drop
    elif scenario == "tls" or scenario in TLS12:
        server_kwargs["ssl"], client_kwargs["ssl"] = tls_contexts(args.keylog, scenario)
        client_kwargs["server_hostname"] = TLS_SERVER_NAME
        client = client_tls
        scheme = "wss"
    elif scenario == "refused":

        def process_request(connection, request):
            return connection.respond(403, "origin not allowed\n")

    done = asyncio.get_running_loop().create_future()

    async def tracked(ws):
        try:
            await handler(ws)
        finally:
            if not done.done():
                done.set_result(None)

    async with serve(
        tracked, "127.0.0.1", 0, process_request=process_request, max_size=None, **server_kwargs
    ) as server:
        port = server.sockets[0].getsockname()[1]
        await port_ready(port)
        uri = f"{scheme}://127.0.0.1:{port}/{scenario}"
        try:
            async with connect(uri, max_size=None, **client_kwargs) as ws:
                try:
                    await client(ws)
                except ConnectionClosed as exc:
                    LOG["client"]["error"] = repr(exc)
                await ws.wait_closed()
            finish_peer("client", ws)
        except InvalidStatus as exc:
            LOG["client"]["error"] = f"refused: {exc.response.status_code}"
            LOG["client"]["status"] = exc.response.status_code
            return port
        await done
    return port


async def run_openssl(args, port_ready):
    """openssl s_client as a WebSocket client by hand, asking for a key
    update before each message after the first."""
    server_ctx, _ = tls_contexts()
    LOG["library"] = {"client": "openssl s_client", "server": f"websockets {websockets.__version__}"}
    done = asyncio.get_running_loop().create_future()

    async def echo(ws):
        try:
            async for message in ws:
                LOG["server"]["received_messages"].append(message_record(message))
                await send_logged(ws, "server", message)
        except ConnectionClosed:
            pass
        finally:
            if not done.done():
                done.set_result(None)

    async with serve(echo, "127.0.0.1", 0, ssl=server_ctx, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        await port_ready(port)
        command = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", TLS_SERVER_NAME]
        if args.keylog:
            command += ["-keylogfile", str(args.keylog)]
        client = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        key = base64.b64encode(os.urandom(16)).decode()
        client.stdin.write(
            f"GET /{args.scenario} HTTP/1.1\r\nHost: {TLS_SERVER_NAME}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        await client.stdin.drain()
        # s_client prints the session first, then what the server sends.
        await client.stdout.readuntil(b"HTTP/1.1 101")
        await client.stdout.readuntil(b"\r\n\r\n")
        for i, text in enumerate(["before any update", "after one key update", "after two"]):
            if i > 0:
                # A read of its own: s_client takes a line starting with K
                # as the command, not as data.
                client.stdin.write(b"K\n")
                await client.stdin.drain()
                await client.stderr.readuntil(b"KEYUPDATE")
            data = text.encode()
            mask = os.urandom(4)
            frame = bytes([0x81, 0x80 | len(data)]) + mask + bytes(b ^ mask[j % 4] for j, b in enumerate(data))
            LOG["client"]["sent_messages"].append(message_record(text))
            client.stdin.write(frame)
            await client.stdin.drain()
            await client.stdout.readuntil(data)
            LOG["client"]["received_messages"].append(message_record(text))
        # Closing its input ends s_client: TCP closes, no close frame.
        client.stdin.close()
        if await client.wait() != 0:
            raise SystemExit(f"openssl s_client failed ({client.returncode})")
        await done
    return port


async def run_node(scenario, args, port_ready):
    script = "capture_h2.mjs" if scenario.startswith("h2") else "capture_peers.mjs"
    env = dict(os.environ)
    options = []
    if scenario.startswith("node-tls"):
        env.update(tls_files(args.out.parent))
        if args.keylog:
            options.append(f"--tls-keylog={args.keylog}")
    if scenario == "chromium":
        script = "capture_chromium.mjs"
        env.update(tls_files(args.out.parent))
        env["WSCOPE_KEYLOG"] = str(args.keylog or args.out.parent / "chromium.keys")
    node = await asyncio.create_subprocess_exec(
        "node",
        *options,
        str(HERE / script),
        scenario,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    line = (await node.stdout.readline()).decode()
    match = re.search(r"listening on (?:wss|ws|http)://127\.0\.0\.1:(\d+)", line)
    if not match:
        raise SystemExit(f"{script} did not name its port: {line!r}")
    port = int(match.group(1))
    await port_ready(port)
    node.stdin.write(b"go\n")
    await node.stdin.drain()
    node.stdin.close()
    out = await node.stdout.read()
    if await node.wait() != 0:
        raise SystemExit(f"{script} failed ({node.returncode})")
    report = json.loads(out)
    LOG["client"], LOG["server"] = report["client"], report["server"]
    LOG["library"] = report["library"]
    return port


# --- tcpdump ----------------------------------------------------------------


class Capture:
    def __init__(self, out):
        self.out = out
        self.proc = None
        self.stderr = []

    async def start(self, port):
        self.port = port
        self.proc = await asyncio.create_subprocess_exec(
            "tcpdump", "-i", "lo", "-U", "--immediate-mode", "-B", "65536", "-s", "0",
            "-Z", "root", "-w", str(self.out), f"port {port}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        while True:
            line = (await self.proc.stderr.readline()).decode()
            if not line:
                raise SystemExit("tcpdump ended before listening: " + "".join(self.stderr))
            self.stderr.append(line)
            if "listening on" in line:
                return

    async def stop(self):
        # The marker datagram: once it is in the file, so is everything before.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for _ in range(2000):
                udp.sendto(MARKER, ("127.0.0.1", self.port))
                await asyncio.sleep(0.005)
                if MARKER in self.out.read_bytes():
                    break
            else:
                raise SystemExit("the marker datagram never reached the capture")
        self.proc.send_signal(signal.SIGINT)
        rest = (await self.proc.stderr.read()).decode()
        await self.proc.wait()
        self.stderr.append(rest)
        dropped = re.search(r"(\d+) packets? dropped by kernel", rest)
        captured = re.search(r"(\d+) packets? captured", rest)
        if not dropped or int(dropped.group(1)) != 0:
            raise SystemExit("tcpdump lost packets: " + rest)
        return int(captured.group(1)) if captured else -1


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", nargs="?", choices=sorted(SCENARIOS))
    parser.add_argument("--out", type=Path, help="the pcap file to write")
    parser.add_argument("--log", type=Path, help="the JSON log of what the peers sent and received")
    parser.add_argument("--count", type=int, default=3000, help="messages in the pipelined scenario")
    parser.add_argument(
        "--external-capture",
        action="store_true",
        help='no tcpdump: print "port PORT", wait for a line on stdin, then run the peers',
    )
    parser.add_argument("--list", action="store_true", help="print the scenarios")
    parser.add_argument("--keylog", type=Path, help="where TLS scenarios log their session secrets")
    parser.add_argument(
        "--mask-seed",
        type=int,
        help="Python clients draw their masking keys from random.Random(SEED), not os.urandom: "
        "the same WebSocket bytes every run",
    )
    args = parser.parse_args()
    if args.list:
        print("\n".join(SCENARIOS))
        return
    if not (args.scenario and args.log and (args.out or args.external_capture)):
        parser.error("SCENARIO, --log and --out (or --external-capture) are required")

    install_frame_hooks(args.mask_seed)
    capture = Capture(args.out)
    LOG["library"] = {"client": f"websockets {websockets.__version__}", "server": f"websockets {websockets.__version__}"}

    async def port_ready(port):
        if args.external_capture:
            print(f"port {port}", flush=True)
            line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            if not line:
                raise SystemExit("stdin ended before the capture was ready")
        else:
            await capture.start(port)

    try:
        if args.scenario == "openssl-key-update":
            port = await run_openssl(args, port_ready)
        elif args.scenario.startswith(("node-", "h2", "chromium")):
            port = await run_node(args.scenario, args, port_ready)
        else:
            port = await run_python(args.scenario, args, port_ready)
    finally:
        if capture.proc and capture.proc.returncode is None:
            packets = await capture.stop()
    log = {
        "scenario": args.scenario,
        "port": port,
        "library": LOG.pop("library"),
        "mask_seed": args.mask_seed,
        "expect": {
            "ended": SCENARIOS[args.scenario][0],
            "by": SCENARIOS[args.scenario][1],
            "code": SCENARIOS[args.scenario][2],
            "handshake": HANDSHAKE.get(args.scenario, "ok"),
        },
        **LOG,
    }
    args.log.write_text(json.dumps(log, ensure_ascii=False) + "\n")
    if args.external_capture:
        print(f"ran {args.scenario} on port {port}")
    else:
        print(f"captured {args.scenario} on port {port}: {packets} packets")


if __name__ == "__main__":
    asyncio.run(main())

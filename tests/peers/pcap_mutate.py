#!/usr/bin/env python3
"""Rewrites a pcap of WebSocket traffic the way networks and capture points
damage TCP, and prints as JSON exactly what it did.

    pcap_mutate.py IN OUT MUTATION [--conn N] [--dir c2s|s2c] [--segment K]
                                   [--packet N] [--held] [--mid-frame]

IN is a classic pcap (microsecond or nanosecond, either byte order) with
link type Ethernet, Linux cooked (v1, v2), raw IP, null/loop or bare
IPv4/IPv6, as `tcpdump -i lo -w` writes it; OUT is the same format. Plain
Python: no scapy.

MUTATION is one of:

  none       copy IN as it is (to read the analysis below)
  reorder    swap data segment K of one direction with the next data
             segment of that direction; the packets trade places, the
             timestamps stay where they were (so both arrive no earlier
             than the first of the two positions and the bytes of both are
             complete only at the second)
  duplicate  a copy of segment K (identical bytes) right after segment K+1:
             a retransmission of data already delivered
  overlap    segment K cut in two pieces that share the middle third of its
             bytes (identical in both), at segment K's place and time
  conflict   a retransmission of segment K with the middle third of its
             bytes inverted, right after segment K; with --held, segment
             K+1, then its conflicting retransmission, then segment K (the
             first copy is still waiting behind a hole when the second
             arrives). The first copy is the true one.
  drop       segment K removed (refused if another packet carries any of
             its bytes)
  cut        every packet before packet N (0-based index in IN) removed:
             the capture starts mid-connection. Without --packet, N is the
             packet of segment K; with --mid-frame, the first data segment
             from segment K on that starts inside a frame.

"Segment K" counts the data segments of one direction (--dir, c2s by
default) of one WebSocket connection (--conn, 1-based in order of the SYN
or first packet, WebSocket connections only) that lie wholly after the
HTTP upgrade head, first copies only, from 0; the default is the middle one.

The JSON on stdout:

  mutation, conn, dir, and what was done: `segments` (each with `packet`,
  its index in IN, and `seq` [first, one past last] as absolute TCP
  sequence numbers), `missing` [A, B] for drop, `differs` [A, B] for
  conflict, `overlap` [A, B] for overlap, `window_us` [t1, t2] (the
  timestamps of the positions whose contents changed), `start_seq`
  {c2s, s2c} for cut (the sequence number of the first packet each
  direction has left, its first byte if it carries data) and
  `first_frame_seq` {c2s, s2c} (the first frame boundary at or after it).

  connections: for every WebSocket connection found in IN: `client`,
  `server` ("ip:port"), `extensions` (the 101's Sec-WebSocket-Extensions
  value, or null), and per direction `isn`, `ws_start` (sequence number of
  the first byte after the HTTP head), `end` (one past the last byte) and
  `frames`: [seq, wire_length, payload_length, opcode, fin, rsv1, crc32 of
  its bytes on the wire] for every frame, parsed here from the reassembled
  stream, and `segments`: [packet, seq, length] for the data segments
  counted as "segment K".

Sequence numbers are absolute, as on the wire (mod 2**32). IP total length
(IPv4 header checksum too) is fixed in packets whose size changes; TCP
checksums are left as they are (loopback captures have none worth keeping).
"""

import argparse
import json
import struct
import sys
import zlib

MOD = 1 << 32

# --- pcap file ---------------------------------------------------------------


class Capture:
    def __init__(self, path):
        with open(path, "rb") as f:
            data = f.read()
        if len(data) < 24:
            sys.exit(f"{path}: too short for a pcap header")
        magic = data[:4]
        table = {
            b"\xd4\xc3\xb2\xa1": ("<", 1),
            b"\xa1\xb2\xc3\xd4": (">", 1),
            b"\x4d\x3c\xb2\xa1": ("<", 1000),
            b"\xa1\xb2\x3c\x4d": (">", 1000),
        }
        if magic not in table:
            sys.exit(f"{path}: not a classic pcap file (pcapng? convert it with editcap -F pcap)")
        self.endian, self.ns_per_unit = table[magic]
        self.header = data[:24]
        self.linktype = struct.unpack(self.endian + "I", data[20:24])[0] & 0x0FFFFFFF
        self.records = []  # [ts_sec, ts_frac, orig_len, bytes]
        pos = 24
        while pos + 16 <= len(data):
            sec, frac, incl, orig = struct.unpack(self.endian + "IIII", data[pos : pos + 16])
            body = data[pos + 16 : pos + 16 + incl]
            if len(body) < incl:
                break  # a cut-off last record
            # The last field: bytes the capture left off (snap length).
            self.records.append([sec, frac, max(orig - incl, 0), body])
            pos += 16 + incl

    def ts_us(self, record):
        sec, frac = record[0], record[1]
        return sec * 1_000_000 + (frac // 1000 if self.ns_per_unit == 1000 else frac)

    def write(self, path, records):
        with open(path, "wb") as f:
            f.write(self.header)
            for sec, frac, left_off, body in records:
                f.write(struct.pack(self.endian + "IIII", sec, frac, len(body), len(body) + left_off))
                f.write(body)


# --- packet layers ------------------------------------------------------------


class Tcp:
    """One TCP segment inside a captured packet, with the offsets needed to
    rewrite it."""

    __slots__ = ("ip_off", "ip_version", "tcp_off", "data_off", "data_end", "src", "dst", "seq", "flags")

    def payload(self, body):
        return body[self.data_off : self.data_end]


def ip_offset(linktype, body, endian):
    if linktype == 1:  # Ethernet
        off, ethertype = 14, struct.unpack(">H", body[12:14])[0]
        while ethertype in (0x8100, 0x88A8) and len(body) >= off + 4:
            ethertype = struct.unpack(">H", body[off + 2 : off + 4])[0]
            off += 4
        return off if ethertype in (0x0800, 0x86DD) else None
    if linktype == 113:  # Linux cooked v1
        return 16 if struct.unpack(">H", body[14:16])[0] in (0x0800, 0x86DD) else None
    if linktype == 276:  # Linux cooked v2
        return 20 if struct.unpack(">H", body[0:2])[0] in (0x0800, 0x86DD) else None
    if linktype in (101, 12, 14, 228, 229):  # raw IP
        return 0
    if linktype in (0, 108):  # null / OpenBSD loop: a 4-byte address family
        return 4
    sys.exit(f"link type {linktype} is not supported")


def parse_tcp(linktype, body, endian):
    if len(body) < 4:
        return None
    off = ip_offset(linktype, body, endian)
    if off is None or len(body) < off + 20:
        return None
    version = body[off] >> 4
    t = Tcp()
    t.ip_off, t.ip_version = off, version
    if version == 4:
        ihl = (body[off] & 15) * 4
        total = struct.unpack(">H", body[off + 2 : off + 4])[0]
        if body[off + 9] != 6:
            return None
        frag = struct.unpack(">H", body[off + 6 : off + 8])[0]
        if frag & 0x3FFF:
            return None  # fragments: not on loopback
        t.src, t.dst = ip4(body[off + 12 : off + 16]), ip4(body[off + 16 : off + 20])
        t.tcp_off, ip_end = off + ihl, off + total
    elif version == 6:
        if len(body) < off + 40 or body[off + 6] != 6:
            return None  # extension headers: not on loopback
        plen = struct.unpack(">H", body[off + 4 : off + 6])[0]
        t.src, t.dst = ip6(body[off + 8 : off + 24]), ip6(body[off + 24 : off + 40])
        t.tcp_off, ip_end = off + 40, off + 40 + plen
    else:
        return None
    if len(body) < t.tcp_off + 20:
        return None
    sport, dport, seq = struct.unpack(">HHI", body[t.tcp_off : t.tcp_off + 8])
    doff = (body[t.tcp_off + 12] >> 4) * 4
    t.src, t.dst = f"{t.src}:{sport}" if version == 4 else f"[{t.src}]:{sport}", f"{t.dst}:{dport}" if version == 4 else f"[{t.dst}]:{dport}"
    t.seq, t.flags = seq, body[t.tcp_off + 13]
    t.data_off, t.data_end = t.tcp_off + doff, min(ip_end, len(body))
    return t


def ip4(b):
    return ".".join(str(x) for x in b)


def ip6(b):
    return ":".join(f"{b[i] << 8 | b[i + 1]:x}" for i in range(0, 16, 2))


def with_payload(body, tcp, seq, payload):
    """The packet `body` with its TCP payload replaced by `payload` at `seq`,
    IP length (and the IPv4 header checksum) fixed."""
    head = bytearray(body[: tcp.data_off])
    struct.pack_into(">I", head, tcp.tcp_off + 4, seq % MOD)
    off = tcp.ip_off
    if tcp.ip_version == 4:
        total = tcp.data_off - off + len(payload)
        struct.pack_into(">H", head, off + 2, total)
        ihl = (head[off] & 15) * 4
        struct.pack_into(">H", head, off + 10, 0)
        struct.pack_into(">H", head, off + 10, checksum(bytes(head[off : off + ihl])))
    else:
        struct.pack_into(">H", head, off + 4, tcp.data_off - off - 40 + len(payload))
    return bytes(head) + payload


def checksum(data):
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


# --- connections ------------------------------------------------------------


def rel(seq, base):
    return (seq - base) % MOD


class Direction:
    def __init__(self):
        self.isn = None  # from the SYN
        self.base = None  # the first sequence number seen, when no SYN
        self.segments = []  # (packet index, seq, payload)

    def origin(self):
        return (self.isn + 1) % MOD if self.isn is not None else self.base

    def stream(self):
        """The bytes in order, first copy wins, up to the first hole."""
        origin = self.origin()
        pieces = sorted(((rel(seq, origin), i, data) for i, seq, data in self.segments if data), key=lambda p: (p[0], p[1]))
        out = bytearray()
        for start, _, data in pieces:
            if start > len(out):
                break
            if start + len(data) > len(out):
                out += data[len(out) - start :]
        return bytes(out)


class Connection:
    def __init__(self, client, server):
        self.client, self.server = client, server
        self.dirs = {"c2s": Direction(), "s2c": Direction()}


def find_connections(cap):
    conns, order, packets = {}, [], []
    for index, record in enumerate(cap.records):
        t = parse_tcp(cap.linktype, record[3], cap.endian)
        packets.append(t)
        if t is None:
            continue
        key = frozenset((t.src, t.dst))
        conn = conns.get(key)
        if conn is None:
            syn_ack = t.flags & 0x12 == 0x12
            conn = Connection(t.dst, t.src) if syn_ack else Connection(t.src, t.dst)
            conns[key] = conn
            order.append(conn)
        d = conn.dirs["c2s" if t.src == conn.client else "s2c"]
        if t.flags & 0x02:
            d.isn = t.seq
        if d.base is None:
            d.base = t.seq
        d.segments.append((index, t.seq, t.payload(record[3])))
    websockets = []
    for conn in order:
        c2s = conn.dirs["c2s"].stream()
        s2c = conn.dirs["s2c"].stream()
        if not c2s.startswith(b"GET "):
            if s2c.startswith(b"GET "):  # the capture missed the SYN
                conn.client, conn.server = conn.server, conn.client
                conn.dirs = {"c2s": conn.dirs["s2c"], "s2c": conn.dirs["c2s"]}
                c2s, s2c = s2c, c2s
            else:
                continue
        req_end, resp_end = c2s.find(b"\r\n\r\n"), s2c.find(b"\r\n\r\n")
        if req_end < 0 or resp_end < 0 or b"upgrade: websocket" not in c2s[:req_end].lower():
            continue
        if not s2c.startswith(b"HTTP/1.1 101"):
            continue
        conn.extensions = None
        for line in s2c[:resp_end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-extensions":
                conn.extensions = value.strip().decode("latin-1")
        for name, stream, head_end in (("c2s", c2s, req_end), ("s2c", s2c, resp_end)):
            d = conn.dirs[name]
            d.ws_start = (d.origin() + head_end + 4) % MOD
            d.end = (d.origin() + len(stream)) % MOD
            d.frames = parse_frames(stream[head_end + 4 :], d.ws_start)
        websockets.append(conn)
    return websockets, packets


def parse_frames(data, seq):
    """[seq, wire_length, payload_length, opcode, fin, rsv1, crc32 of the
    frame as on the wire] for each whole frame (RFC 6455 §5.2)."""
    frames, pos = [], 0
    while pos + 2 <= len(data):
        b0, b1 = data[pos], data[pos + 1]
        length, head = b1 & 0x7F, 2
        if length == 126:
            if pos + 4 > len(data):
                break
            length, head = struct.unpack(">H", data[pos + 2 : pos + 4])[0], 4
        elif length == 127:
            if pos + 10 > len(data):
                break
            length, head = struct.unpack(">Q", data[pos + 2 : pos + 10])[0], 10
        if b1 & 0x80:
            head += 4
        if pos + head + length > len(data):
            break
        crc = zlib.crc32(data[pos : pos + head + length])
        frames.append([(seq + pos) % MOD, head + length, length, b0 & 0x0F, bool(b0 & 0x80), bool(b0 & 0x40), crc])
        pos += head + length
    return frames


def describe(conn):
    return {
        "client": conn.client,
        "server": conn.server,
        "extensions": conn.extensions,
        **{
            name: {
                "isn": d.isn,
                "ws_start": d.ws_start,
                "end": d.end,
                "frames": d.frames,
                "segments": [[i, seq, len(data)] for i, seq, data in ws_segments(conn, name)],
            }
            for name, d in conn.dirs.items()
        },
    }


# --- mutations ----------------------------------------------------------------


def ws_segments(conn, direction):
    """(packet index, seq, payload) of the data segments wholly after the
    upgrade head, first copies only, in file order."""
    d = conn.dirs[direction]
    seen, out = set(), []
    for index, seq, data in d.segments:
        if not data or rel(seq, d.ws_start) >= MOD // 2 or (seq, len(data)) in seen:
            continue
        seen.add((seq, len(data)))
        out.append((index, seq, data))
    return out


def seg_json(index, seq, data):
    return {"packet": index, "seq": [seq, (seq + len(data)) % MOD]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("mutation", choices=["none", "reorder", "duplicate", "overlap", "conflict", "drop", "cut"])
    p.add_argument("--conn", type=int, default=1)
    p.add_argument("--dir", choices=["c2s", "s2c"], default="c2s")
    p.add_argument("--segment", type=int)
    p.add_argument("--packet", type=int)
    p.add_argument("--held", action="store_true")
    p.add_argument("--mid-frame", action="store_true")
    args = p.parse_args()

    cap = Capture(args.input)
    conns, packets = find_connections(cap)
    report = {"mutation": args.mutation, "linktype": cap.linktype, "connections": [describe(c) for c in conns]}
    records = [list(r) for r in cap.records]
    if args.mutation == "none":
        cap.write(args.output, records)
        print(json.dumps(report))
        return
    if not 1 <= args.conn <= len(conns):
        sys.exit(f"{args.input}: no WebSocket connection {args.conn} (found {len(conns)})")
    conn = conns[args.conn - 1]
    segs = ws_segments(conn, args.dir)
    k = args.segment if args.segment is not None else len(segs) // 2
    need = 2 if args.mutation in ("reorder", "duplicate") or (args.mutation == "conflict" and args.held) else 1
    if not 0 <= k <= len(segs) - need:
        sys.exit(f"segment {k} does not exist: {args.dir} has {len(segs)} data segments after the upgrade")
    report.update({"conn": args.conn, "dir": args.dir})
    d = conn.dirs[args.dir]

    def replace(index, seq, payload):
        t = packets[index]
        return with_payload(records[index][3], t, seq, payload)

    if args.mutation == "reorder":
        (i, si, di), (j, sj, dj) = segs[k], segs[k + 1]
        records[i][3], records[j][3] = records[j][3], records[i][3]
        report["segments"] = [seg_json(i, si, di), seg_json(j, sj, dj)]
        report["window_us"] = [cap.ts_us(records[i]), cap.ts_us(records[j])]
        out = records
    elif args.mutation == "duplicate":
        (i, si, di), (j, _, _) = segs[k], segs[k + 1]
        copy = [records[j][0], records[j][1], records[i][2], records[i][3]]
        out = records[: j + 1] + [copy] + records[j + 1 :]
        report["segments"] = [seg_json(i, si, di)]
        report["copy_after_packet"] = j
    elif args.mutation == "overlap":
        i, s, data = segs[k]
        if len(data) < 3:
            sys.exit(f"segment {k} has {len(data)} bytes: too short to overlap")
        a, b = len(data) // 3, len(data) - len(data) // 3
        first = [records[i][0], records[i][1], 0, replace(i, s, data[:b])]
        second = [records[i][0], records[i][1], 0, replace(i, s + a, data[a:])]
        out = records[:i] + [first, second] + records[i + 1 :]
        report["segments"] = [seg_json(i, s, data)]
        report["pieces"] = [[s, (s + b) % MOD], [(s + a) % MOD, (s + len(data)) % MOD]]
        report["overlap"] = [(s + a) % MOD, (s + b) % MOD]
    elif args.mutation == "conflict":
        target = segs[k + 1] if args.held else segs[k]
        i, s, data = target
        a, b = len(data) // 3, len(data) - len(data) // 3
        if b <= a:
            a, b = 0, len(data)
        bad = data[:a] + bytes(x ^ 0xFF for x in data[a:b]) + data[b:]
        copy = [records[i][0], records[i][1], 0, replace(i, s, bad)]
        if args.held:
            (h, sh, dh) = segs[k]
            # Positions h < i: segment K+1 takes h's place, its conflicting
            # copy follows at the same time, segment K goes to i's place.
            first = [records[h][0], records[h][1], records[i][2], records[i][3]]
            late = [records[i][0], records[i][1], records[h][2], records[h][3]]
            copy[0], copy[1] = records[h][0], records[h][1]
            out = records[:h] + [first, copy] + records[h + 1 : i] + [late] + records[i + 1 :]
            report["segments"] = [seg_json(h, sh, dh), seg_json(i, s, data)]
            report["window_us"] = [cap.ts_us(records[h]), cap.ts_us(records[i])]
        else:
            out = records[: i + 1] + [copy] + records[i + 1 :]
            report["segments"] = [seg_json(i, s, data)]
        report["held"] = args.held
        report["differs"] = [(s + a) % MOD, (s + b) % MOD]
    elif args.mutation == "drop":
        i, s, data = segs[k]
        lo, hi = rel(s, d.origin()), rel(s, d.origin()) + len(data)
        for index, seq, other in d.segments:
            r = rel(seq, d.origin())
            if index != i and other and r < hi and r + len(other) > lo:
                sys.exit(f"packet {index} also carries bytes of segment {k}: dropping one copy would leave no hole")
        out = records[:i] + records[i + 1 :]
        report["segments"] = [seg_json(i, s, data)]
        report["missing"] = [s, (s + len(data)) % MOD]
    elif args.mutation == "cut":
        if args.packet is not None:
            n = args.packet
        else:
            n = segs[k][0]
            if args.mid_frame:
                starts = {f[0] for f in d.frames}
                later = [seg for seg in segs[k:] if seg[1] not in starts]
                if not later:
                    sys.exit(f"no data segment from {k} on starts inside a frame")
                n = later[0][0]
        report["packet"] = n
        report["start_seq"], report["first_frame_seq"] = {}, {}
        for name, dd in conn.dirs.items():
            left = [(index, seq, data) for index, seq, data in dd.segments if index >= n]
            if not left:
                report["start_seq"][name] = report["first_frame_seq"][name] = None
                continue
            start = left[0][1]
            if rel(start, dd.ws_start) >= MOD // 2:
                sys.exit(f"packet {n} is before the end of the upgrade head ({name}): that is not mid-connection")
            report["start_seq"][name] = start
            later = [f[0] for f in dd.frames if rel(f[0], start) < MOD // 2]
            report["first_frame_seq"][name] = later[0] if later else dd.end
        out = records[n:]
    cap.write(args.output, out)
    print(json.dumps(report))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Write the seed corpus of the data-plane fuzz targets (corpus/<target>/<name>).

The seeds are well-formed and near-miss inputs built from the formats' definitions
(RFC 6455 §5, cluster/codec.rs mesh version 3, docs/link-protocol.md), so libFuzzer starts deep in each
decoder. Re-run after a format change: python3 dataplane/fuzz/make-corpus.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- ws_reader: [max u16 LE][split step][client bytes] ----
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def frame(fin, op, payload, mask=MASK, masked=True):
    b0 = (0x80 if fin else 0) | op
    n = len(payload)
    bit = 0x80 if masked else 0
    if n < 126:
        head = bytes([b0, bit | n])
    elif n <= 0xFFFF:
        head = bytes([b0, bit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, bit | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws(name, data, max_=1000, step=0):
    write("ws_reader", name, struct.pack("<H", max_) + bytes([step]) + data)


ws("rfc-masked-hello", bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]))
ws("rfc-masked-pong", bytes([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]))
ws("rfc-unmasked-hello", frame(True, 1, b"Hello", masked=False))
ws("fragmented-hello", frame(False, 1, b"Hel") + frame(True, 0, b"lo"), step=1)
ws("ping-inside-fragments", frame(False, 1, b"4he") + frame(True, 9, b"p") + frame(True, 0, b"llo"), step=3)
ws("binary-256", frame(True, 2, bytes(range(256))), max_=300, step=7)
ws("binary-64k", frame(True, 2, b"\xa5" * 65536), max_=0xFFFF, step=15)
ws("over-limit-header", bytes([0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0]), max_=100)
ws("len-msb-set", bytes([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1]) + MASK, max_=0xFFFF)
ws("close-empty", frame(True, 8, b""))
ws("close-1000-reason", frame(True, 8, struct.pack(">H", 1000) + b"bye"))
ws("close-one-byte", frame(True, 8, b"\x03"))
ws("close-1005", frame(True, 8, struct.pack(">H", 1005)))
ws("close-bad-utf8-reason", frame(True, 8, struct.pack(">H", 1000) + b"\xff"))
ws("utf8-split-across-fragments", frame(False, 1, "κό".encode()[:3]) + frame(True, 0, "κό".encode()[3:] + "σμε".encode()), step=2)
ws("utf8-invalid", frame(True, 1, b"a\xc0\x80b"))
ws("rsv1", bytes([0xC1, 0x80]) + MASK)
ws("reserved-opcode", frame(True, 3, b""))
ws("stray-continuation", frame(True, 0, b"x"))
ws("interleaved-message", frame(False, 1, b"a") + frame(True, 2, b"b"))
ws("fragmented-ping", frame(False, 9, b""))
ws("long-ping", frame(True, 9, b"\x00" * 126))
ws("engine-io-session", frame(True, 1, b"2probe") + frame(True, 1, b"5") + frame(True, 1, b'42["chat","hi"]') + frame(True, 2, b"\x04\x01\x02"), step=5)

# ---- mesh: bodies for mesh_frame, a whole stream for mesh_stream ----


def s(x):
    x = x.encode() if isinstance(x, str) else x
    return struct.pack(">I", len(x)) + x


def lst(items):
    return struct.pack(">I", len(items)) + b"".join(s(i) for i in items)


def args(js, attachments=()):
    return s(js) + struct.pack(">I", len(attachments)) + b"".join(s(a) for a in attachments)


def bins(items):
    return struct.pack(">I", len(items)) + b"".join(s(i) for i in items)


def sel(rooms=(), except_rooms=(), except_socket=""):
    return lst(list(rooms)) + lst(list(except_rooms)) + s(except_socket)


U64 = lambda n: struct.pack(">Q", n)
bodies = {
    "broadcast": b"\x01" + s("/") + sel(["room1"], ["muted"]) + s("chat") + args('["hi"]') + b"\x00" + U64(0),
    "broadcast-ack-binary": b"\x01" + s("/admin") + sel() + s("file") + args('[{"_placeholder":true,"num":0}]', [b"\x00\x01"]) + b"\x01" + U64(8),
    "request-join": b"\x02" + U64(1) + s("/") + sel(["a"]) + b"\x01" + lst(["b", "c"]),
    "request-leave": b"\x02" + U64(2) + s("/") + sel() + b"\x02" + lst(["b"]),
    "request-disconnect": b"\x02" + U64(3) + s("/") + sel(["a"]) + b"\x03\x01",
    "request-fetch": b"\x02" + U64(4) + s("/") + sel(["a"]) + b"\x04",
    "reply-count": b"\x03" + U64(1) + b"\x01" + struct.pack(">I", 7),
    "reply-sockets": b"\x03" + U64(4) + b"\x02" + struct.pack(">I", 1) + s("sock") + s("sid") + s("/") + lst(["sock", "a"]) + s("{}") + b"\x00" + b"\x01" + s("node-b") + U64(7),
    "reply-data": b"\x03" + U64(5) + b"\x03" + s('{"ok":true}'),
    "ack-count": b"\x04" + U64(8) + lst(["s1", "s2"]),
    "ack": b"\x05" + U64(8) + s("s1") + args("[1]"),
    "rooms": b"\x07" + s("/") + lst(["room1", "room2"]),
    "to-app": b"\x08" + U64(3) + s("sid") + b"\x01" + s('{"t":"open"}') + bins([b"\x00"]),
    "from-app": b"\x09" + U64(3) + s('{"t":"packet","sid":"sid","data":"2[]"}') + bins([]),
    "app-gone": b"\x0a" + U64(3),
    "app-emit": b"\x0b" + U64(1) + U64(3) + s("/") + s('["ev"]') + bins([b"x"]),
    "app-ack": b"\x0c" + U64(2) + s("[1]") + bins([]),
    "app-data": b"\x0d" + U64(1) + U64(3) + s("/") + lst(["s1"]),
    "unbound": b"\x0e" + U64(3) + s("sid"),
    "unknown-kind": b"\x63",
    "huge-count": b"\x07" + s("/") + struct.pack(">I", 0xFFFFFFFF),
    "truncated": b"\x01" + struct.pack(">I", 100) + b"/",
}
for name, body in bodies.items():
    write("mesh_frame", name, body)
VERSION = 3
preamble = b"SIOHMESH" + struct.pack(">H", VERSION)
hs = b"SIOHMESH" + struct.pack(">H", VERSION) + s("node-a") + U64(1_700_000_000_000_000_000)
noise_payload = struct.pack(">H", len(hs)) + hs
frames = b"".join(struct.pack(">I", len(b)) + b for b in [bodies["rooms"], bodies["broadcast"], bodies["to-app"], bodies["ack"]])
write("mesh_stream", "handshake-then-frames", preamble + noise_payload + frames)
write("mesh_stream", "handshake-only", preamble + noise_payload)
write("mesh_stream", "wrong-magic", b"SIOHMESS" + preamble[8:] + noise_payload)
write("mesh_stream", "name-too-long", preamble + struct.pack(">H", 14) + b"SIOHMESH" + struct.pack(">HI", VERSION, 5000))
write("mesh_stream", "handshake-length-mismatch", preamble + struct.pack(">H", len(hs) + 1) + hs + b"\x00")
write("mesh_stream", "frame-too-large", preamble + noise_payload + struct.pack(">I", 0xFFFFFFFF))

# ---- link_wire: [limit][kind][u16 LE len][bytes]... ----


def rec(kind, data):
    data = data.encode() if isinstance(data, str) else data
    return bytes([kind]) + struct.pack("<H", len(data)) + data


def j(obj):
    return json.dumps(obj, separators=(",", ":"))


link = {
    "packet": [rec(0, j({"t": "packet", "sid": "abc", "data": '2["chat","hi"]'}))],
    "packet-binary": [rec(0, j({"t": "packet", "sid": "abc", "data": '51-["up",{"_placeholder":true,"num":0}]', "bin": 1})), rec(1, b"\x01\x02")],
    "broadcast-two-attachments": [rec(0, j({"t": "broadcast", "nsp": "/", "rooms": ["r"], "except": [], "data": "52-[]", "bin": 2, "req": 3, "timeout": 1000})), rec(1, b"a"), rec(1, b"b")],
    "join-leave": [rec(0, j({"t": "join", "nsp": "/", "id": "s1", "rooms": ["a"]})), rec(0, j({"t": "leave", "nsp": "/", "id": "s1", "rooms": ["a"]}))],
    "sockets-ops": [rec(0, j({"t": "socketsJoin", "nsp": "/", "targets": ["x"]})), rec(0, j({"t": "disconnectSockets", "nsp": "/", "close": True})), rec(0, j({"t": "fetchSockets", "req": 1, "nsp": "/"}))],
    "server-side-emit": [rec(0, j({"t": "serverSideEmit", "nsp": "/", "data": '["ev"]', "req": 2})), rec(0, j({"t": "ssAck", "req": 2, "data": "[1]"}))],
    "reply-pong-close": [rec(0, j({"t": "reply", "req": 1, "data": {"ok": True}})), rec(0, j({"t": "pong", "ts": 1})), rec(0, j({"t": "close", "sid": "abc"}))],
    "unexpected-binary": [rec(1, b"\x00")],
    "missing-attachment": [rec(0, j({"t": "packet", "sid": "a", "data": "x", "bin": 1})), rec(0, j({"t": "pong", "ts": 1}))],
    "too-many-attachments": [rec(0, j({"t": "packet", "sid": "a", "data": "x", "bin": 1000}))],
    "not-json": [rec(0, "{\"t\":")],
}
for name, records in link.items():
    write("link_wire", name, bytes([4]) + b"".join(records))

"""Raw HTTP and WebSocket checks with `requests` and `websocket-client`."""

from __future__ import annotations

import json

import pytest
import requests
import websocket

from conftest import call
from hub import WAIT, Hub

OK = {"ok": True}


@pytest.fixture(scope="module")
def hub():
    h = Hub({"engine": {"max_payload": 10000}, "permissions": [{"namespace": "/", "join": ["*"], "emit": ["*"]}]}).start()
    yield h
    h.close()


@pytest.fixture(autouse=True)
def still_healthy(request, clients):
    """After every test: the hub is alive, a fresh client works and /metrics answers."""
    yield
    h = request.getfixturevalue("hub")
    assert h.alive(), f"the hub exited:\n{h.log()}"
    a, _ = clients(h.url)
    b, inbox = clients(h.url, events=["hi"])
    assert call(b, "hub:join", "health") == OK
    assert call(a, "hub:to", "health", "hi", 1) == OK
    assert inbox["hi"].wait(1) == [(1,)]
    r = requests.get(f"{h.admin_url}/metrics", timeout=WAIT)
    assert r.status_code == 200 and r.text


def eio(h: Hub, method="GET", query="EIO=4&transport=polling", **kw):
    return requests.request(method, f"{h.url}/socket.io/?{query}", timeout=WAIT, **kw)


def test_error_codes(hub):
    r = eio(hub, query="EIO=4&transport=smoke-signals")
    assert (r.status_code, r.json()) == (400, {"code": 0, "message": "Transport unknown"})
    r = eio(hub, query="EIO=4&transport=polling&sid=nobody")
    assert (r.status_code, r.json()) == (400, {"code": 1, "message": "Session ID unknown"})
    r = eio(hub, "PUT", data="40")
    assert r.status_code == 400 and r.json()["code"] == 2
    r = eio(hub, query="EIO=4&transport=websocket")
    assert r.status_code == 400 and r.json()["code"] == 3
    r = eio(hub, query="EIO=3&transport=polling")
    assert r.status_code == 400 and r.json()["code"] == 5


def handshake(h: Hub) -> str:
    r = eio(h)
    assert r.status_code == 200 and r.text.startswith("0"), r.text
    opened = json.loads(r.text[1:])
    assert set(opened) >= {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    return opened["sid"]


def test_polling_connect_reply_without_recovery(hub):
    sid = handshake(hub)
    assert eio(hub, "POST", f"EIO=4&transport=polling&sid={sid}", data="40").status_code == 200
    r = eio(hub, query=f"EIO=4&transport=polling&sid={sid}")
    packet = next(p for p in r.text.split("\x1e") if p.startswith("40"))
    assert list(json.loads(packet[2:])) == ["sid"]


def test_oversized_polling_body(hub):
    sid = handshake(hub)
    r = eio(hub, "POST", f"EIO=4&transport=polling&sid={sid}", data="4" + "x" * 20000)
    assert r.status_code >= 400


def ws_open(h: Hub) -> websocket.WebSocket:
    ws = websocket.create_connection(f"ws://{h.clients}/socket.io/?EIO=4&transport=websocket", timeout=WAIT)
    assert ws.recv().startswith("0")
    ws.send("40")
    assert ws.recv().startswith("40")
    return ws


def closed(ws: websocket.WebSocket) -> bool:
    """Read until the hub closes the connection (True) or a deadline passes (False)."""
    try:
        while True:
            frame = ws.recv()
            if frame in ("", b""):
                return True
            if frame == "2":
                ws.send("3")
    except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
        return True
    except websocket.WebSocketTimeoutException:
        return False
    finally:
        ws.close()


@pytest.mark.parametrize("frame", ["9what", '42["open', "4Q", '42{"a":1}'])
def test_malformed_websocket_frames_close(hub, frame):
    ws = ws_open(hub)
    ws.send(frame)
    assert closed(ws), f"the hub kept the connection open after {frame!r}"


def test_invalid_utf8_closes(hub):
    ws = ws_open(hub)
    ws.send(b'42["\xc3\x28"]', opcode=websocket.ABNF.OPCODE_TEXT)
    assert closed(ws)


def test_websocket_round_trip_raw(hub):
    ws = ws_open(hub)
    try:
        ws.send('420["hub:join","raw"]')
        assert ws.recv() == '430[{"ok":true}]'
    finally:
        ws.close()

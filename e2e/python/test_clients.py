"""python-socketio against the hub: transports, namespaces, rooms, binary, permissions, auth."""

from __future__ import annotations

import threading

import pytest
import socketio

from conftest import call
from hub import ACCESS_KEY, sign_jwt

PERMS = {
    "socketio": {"namespaces": ["/", "/chat"]},
    "permissions": [
        {"namespace": "/", "join": ["*"], "emit": ["*"]},
        {"namespace": "/chat", "join": ["public-*"], "emit": ["public-*", "announce"]},
    ],
}


@pytest.fixture(scope="module")
def hub():
    from hub import Hub

    h = Hub(PERMS).start()
    yield h
    h.close()


OK = {"ok": True}


@pytest.mark.parametrize("transport", ["polling", "websocket"])
def test_single_transport_round_trip(hub, clients, transport):
    a, _ = clients(hub.url, transports=[transport])
    b, inbox = clients(hub.url, events=["hello"], transports=[transport])
    assert a.transport() == transport
    assert call(b, "hub:join", f"py-{transport}") == OK
    assert call(a, "hub:to", f"py-{transport}", "hello", {"from": "a"}, 7) == OK
    assert inbox["hello"].wait(1) == [({"from": "a"}, 7)]
    assert a.transport() == transport


def test_default_transports_upgrade_and_keep_order(hub, clients):
    receiver, inbox = clients(hub.url, events=["n"], transports=["websocket"])
    assert call(receiver, "hub:join", "py-order") == OK
    sender, _ = clients(hub.url)
    assert sender.transport() == "websocket", "python-engineio upgrades polling to websocket during connect"
    for i in range(100):
        sender.emit("hub:to", ("py-order", "n", i))
    assert call(sender, "hub:to", "py-order", "n", "end") == OK
    got = [args[0] for args in inbox["n"].wait(101)]
    assert got == [*range(100), "end"]


def test_namespaces_multiplexed_and_isolated(hub, clients):
    m, inbox = clients(hub.url, events=[("msg", "/"), ("msg", "/chat")], namespaces=["/", "/chat"])
    assert call(m, "hub:join", "public-1") == OK
    assert call(m, "hub:join", "public-1", namespace="/chat") == OK
    other, _ = clients(hub.url, namespaces=["/chat"])
    assert call(other, "hub:to", "public-1", "msg", "chat-only", namespace="/chat") == OK
    assert inbox["/chatmsg"].wait(1) == [("chat-only",)]
    root, _ = clients(hub.url)
    assert call(root, "hub:to", "public-1", "msg", "root-only") == OK
    assert inbox["msg"].wait(1) == [("root-only",)]
    assert inbox["/chatmsg"].items == [("chat-only",)]


def test_namespace_not_allowed_is_refused(hub, clients):
    with pytest.raises(socketio.exceptions.ConnectionError):
        clients(hub.url, namespaces=["/not-allowed"])


def test_rooms_dedupe_and_sender_excluded(hub, clients):
    a, ia = clients(hub.url, events=["msg"])
    s, isender = clients(hub.url, events=["msg"])
    barrier, _ = clients(hub.url)
    for room in ("py-r1", "py-r2"):
        assert call(a, "hub:join", room) == OK
        assert call(s, "hub:join", room) == OK
    assert call(s, "hub:to", ["py-r1", "py-r2"], "msg", "once") == OK
    assert call(barrier, "hub:to", "py-r1", "msg", "end") == OK
    assert ia["msg"].wait(2) == [("once",), ("end",)]
    assert isender["msg"].wait(1) == [("end",)]


def test_binary_nested_both_ways(hub, clients):
    sender, _ = clients(hub.url, transports=["polling"])
    receiver, inbox = clients(hub.url, events=["blob"], transports=["websocket"])
    assert call(receiver, "hub:join", "py-bin") == OK
    payload = {"a": b"\x00\x01\x02", "list": [1, {"deep": [b"\xff" * 1000]}, b""], "s": "text"}
    assert call(sender, "hub:to", "py-bin", "blob", payload, b"top") == OK
    [(obj, top)] = inbox["blob"].wait(1)
    assert obj == payload
    assert top == b"top"


def test_permission_denied(hub, clients):
    a, inbox = clients(hub.url, events=[("msg", "/chat")], namespaces=["/chat"])
    s, _ = clients(hub.url, namespaces=["/chat"])
    res = call(a, "hub:join", "announce", namespace="/chat")
    assert res["ok"] is False and isinstance(res["error"], str) and res["error"]
    assert call(a, "hub:join", "public-ok", namespace="/chat") == OK
    assert call(s, "hub:to", "announce", "msg", "nope", namespace="/chat") == OK
    assert call(s, "hub:to", "public-ok", "msg", "barrier", namespace="/chat") == OK
    assert inbox["/chatmsg"].wait(1) == [("barrier",)]
    denied = call(s, "hub:to", "secret", "msg", "x", namespace="/chat")
    assert denied["ok"] is False


def test_client_auth_required(hub_factory, clients):
    h = hub_factory({"auth": {"client_auth": "required"}, "permissions": [{"namespace": "/", "join": ["*"]}]})
    errors = []
    c = socketio.Client(reconnection=False)
    c.on("connect_error", errors.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        c.connect(h.url, wait_timeout=10)
    assert errors, "the refusal reaches the client as a connect_error"
    message = errors[0]["message"] if isinstance(errors[0], dict) else str(errors[0])
    assert any(w in message.lower() for w in ("token", "auth", "jwt", "credential")), message
    with pytest.raises(socketio.exceptions.ConnectionError):
        clients(h.url, auth={"token": sign_jwt({"sub": "x"}, "forged-key-forged-key-forged-key-forged")})
    with pytest.raises(socketio.exceptions.ConnectionError):
        clients(h.url, auth={"token": sign_jwt({"sub": "x", "exp": 1}, ACCESS_KEY)})
    ok, _ = clients(h.url, auth={"token": sign_jwt({"sub": "py"}, ACCESS_KEY)})
    assert call(ok, "hub:join", "room") == OK
    q, _ = clients(f"{h.url}?access_token={sign_jwt({'sub': 'py'}, ACCESS_KEY)}")
    assert q.connected


def test_reconnects_after_hub_restart(hub_factory):
    h = hub_factory(PERMS)
    c = socketio.Client(reconnection=True, reconnection_delay=0.1, reconnection_delay_max=0.5)
    connects = []
    reconnected = threading.Event()

    def on_connect():
        connects.append(c.get_sid())
        if len(connects) == 2:
            reconnected.set()

    c.on("connect", on_connect)
    try:
        c.connect(h.url, transports=["websocket"], wait_timeout=10)
        h.restart()
        assert reconnected.wait(30), "the client did not reconnect after the hub restarted"
        assert connects[0] != connects[1]
        assert call(c, "hub:join", "again") == OK
    finally:
        c.disconnect()

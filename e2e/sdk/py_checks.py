"""python-socketio checks against app.js (plain or behind the hub): the same answers either way.

usage: py_checks.py URL   — prints `ok 4 checks` or exits non-zero with the failed assertion.
"""
import sys
import threading

import socketio

URL = sys.argv[1]
WAIT = 10


def check_connect_ack_binary():
    sio = socketio.Client(reconnection=False)
    welcome = threading.Event()
    got = {}

    @sio.on("welcome")
    def on_welcome(data):
        got["welcome"] = data
        welcome.set()

    sio.connect(URL, auth={"name": "py"}, transports=["websocket"], wait_timeout=WAIT)
    assert welcome.wait(WAIT), "no welcome"
    assert got["welcome"]["id"] == sio.get_sid("/"), got
    assert got["welcome"]["auth"] == {"name": "py"}, got
    assert sio.call("echo", "hi", timeout=WAIT) == "hi"
    assert sio.call("binary", b"\x01\x02\x03", timeout=WAIT) == b"\x03\x02\x01"
    assert sio.call("whoami", timeout=WAIT)["name"] == "py"
    sio.disconnect()


def check_rejected():
    sio = socketio.Client(reconnection=False)
    errors = []

    @sio.event
    def connect_error(data):
        errors.append(data)

    try:
        sio.connect(URL, auth={"token": "bad"}, transports=["polling"], wait_timeout=WAIT)
    except socketio.exceptions.ConnectionError:
        pass
    else:
        raise AssertionError("connected despite the rejecting middleware")
    assert errors == [{"message": "unauthorized", "data": {"code": "BAD_TOKEN"}}], errors


check_connect_ack_binary()
check_rejected()
print("ok 4 checks")

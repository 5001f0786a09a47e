"""Start the hub under test for the Python e2e tests (the twin of e2e/harness/hub.js).

HUB_IMPL=hub (default) runs $HUB_BIN or <repo>/target/debug/socketio-hub; HUB_IMPL=reference
runs e2e/reference/server.js. Each hub gets its config in a temp TOML file and listens on
127.0.0.1:0; it is ready when it prints `socketio-hub ready clients=<ip:port> admin=<ip:port>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMPL = os.environ.get("HUB_IMPL", "hub")
HUB_BIN = os.environ.get("HUB_BIN", str(REPO / "target" / "debug" / "socketio-hub"))
READY = re.compile(r"socketio-hub ready clients=(\S+) admin=(\S+)")
ACCESS_KEY = "e2e-access-key-0123456789abcdefghijklmnopqrstuv"
WAIT = float(os.environ.get("E2E_WAIT_S", "10"))


def _scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    raise TypeError(f"unsupported TOML value {v!r}")


def to_toml(obj: dict, prefix: str = "") -> str:
    """A tiny TOML writer for HubConfig-shaped dicts (tables, arrays of tables, scalars)."""
    lines, nested = [], []
    for k, v in obj.items():
        if v is None:
            continue
        if isinstance(v, dict) or (isinstance(v, list) and v and all(isinstance(x, dict) for x in v)):
            nested.append((k, v))
        else:
            lines.append(f"{k} = {_scalar(v)}")
    for k, v in nested:
        name = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            lines += ["", f"[{name}]", to_toml(v, name)]
        else:
            for item in v:
                lines += ["", f"[[{name}]]", to_toml(item, name)]
    return "\n".join(lines).lstrip("\n")


def _merge(base, over):
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v)
        return out
    return over


def defaults() -> dict:
    return {"demo_page": False, "shutdown_grace_ms": 1000, "auth": {"access_keys": [ACCESS_KEY]}}


class Hub:
    def __init__(self, config: dict):
        self.dir = tempfile.mkdtemp(prefix="sioh-e2e-py-")
        self.file = os.path.join(self.dir, "hub.toml")
        with open(self.file, "w") as f:
            f.write(to_toml(_merge(defaults(), config)))
        self.output: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.clients = self.admin = ""

    @property
    def url(self) -> str:
        return f"http://{self.clients}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.admin}"

    def log(self, n: int = 60) -> str:
        return "\n".join(self.output[-n:])

    def start(self, listen: str = "127.0.0.1:0") -> "Hub":
        args = ["--config", self.file, "--listen", listen, "--admin-listen", "127.0.0.1:0"]
        if IMPL == "reference":
            cmd = ["node", str(REPO / "e2e" / "reference" / "server.js"), *args]
        elif IMPL == "hub":
            if not os.path.exists(HUB_BIN):
                raise RuntimeError(f"hub binary not found at {HUB_BIN}: run `cargo build` or set HUB_BIN")
            cmd = [HUB_BIN, *args]
        else:
            raise RuntimeError(f"HUB_IMPL must be hub or reference, not {IMPL}")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            env={**os.environ, "RUST_BACKTRACE": "1"},
        )
        ready = threading.Event()

        def reader(proc=self.proc):
            for line in proc.stdout:
                line = line.rstrip("\n")
                self.output.append(line)
                if os.environ.get("HUB_LOG"):
                    print(f"hub: {line}", file=sys.stderr)
                m = READY.search(line)
                if m and not ready.is_set():
                    self.clients, self.admin = m.group(1), m.group(2)
                    ready.set()
            ready.set()

        threading.Thread(target=reader, daemon=True).start()
        deadline = float(os.environ.get("HUB_START_TIMEOUT_S", "30"))
        if not ready.wait(deadline) or not self.clients:
            self.kill()
            raise RuntimeError(f"hub did not print its ready line:\n{self.log()}")
        return self

    def stop(self, grace: float = 5.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> "Hub":
        """Stop, then start again on the same client port so clients can reconnect to it."""
        listen = self.clients
        self.stop()
        deadline = time.monotonic() + 10
        while True:
            try:
                return self.start(listen)
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # the port may linger for a moment: retry the bind

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def sign_jwt(claims: dict, key: str, expires_in: int | None = 3600) -> str:
    """An HS256 JWT; `exp` is added unless given or expires_in is None."""
    now = int(time.time())
    payload = {"iat": now, **claims}
    if "exp" not in payload and expires_in is not None:
        payload["exp"] = now + expires_in

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(payload).encode())
    sig = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def known_failure(entry: str):
    """Mark a test the real hub cannot pass yet; `entry` is an anchor in e2e/KNOWN_FAILURES.md."""
    import pytest

    text = (REPO / "e2e" / "KNOWN_FAILURES.md").read_text()
    if f"{{#{entry}}}" not in text:
        raise RuntimeError(f"known_failure({entry!r}): no {{#{entry}}} entry in e2e/KNOWN_FAILURES.md")
    active = IMPL == "hub" and not os.environ.get("E2E_STRICT")
    return pytest.mark.xfail(active, reason=f"known failure, see e2e/KNOWN_FAILURES.md#{entry}", strict=False)

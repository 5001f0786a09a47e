"""Fixtures: a hub per module (or per test via `hub_factory`), clients that are always closed."""

from __future__ import annotations

import queue
import threading

import pytest
import socketio

from hub import WAIT, Hub


@pytest.fixture
def hub_factory():
    hubs: list[Hub] = []

    def start(config: dict | None = None) -> Hub:
        h = Hub(config or {})
        hubs.append(h)
        return h.start()

    yield start
    for h in hubs:
        h.close()


class Inbox:
    """Records events received by a python-socketio client; `wait` blocks with a deadline."""

    def __init__(self):
        self.items: list[tuple] = []
        self.cond = threading.Condition()

    def push(self, *item):
        with self.cond:
            self.items.append(item)
            self.cond.notify_all()

    def wait(self, n: int = 1, timeout: float = WAIT) -> list[tuple]:
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.items) >= n, timeout)
            assert ok, f"timed out waiting for {n} events, got {len(self.items)}: {self.items!r}"
            return list(self.items)


@pytest.fixture
def clients():
    made: list[socketio.Client] = []

    def make(url: str, events=(), namespaces=None, **connect_kwargs) -> tuple[socketio.Client, dict[str, Inbox]]:
        """Connect a client; `events` lists (event, namespace) names to record in inboxes."""
        c = socketio.Client(reconnection=False)
        made.append(c)
        inboxes: dict[str, Inbox] = {}
        for ev in events:
            name, ns = ev if isinstance(ev, tuple) else (ev, "/")
            box = inboxes.setdefault(f"{ns}{name}" if ns != "/" else name, Inbox())
            c.on(name, (lambda b: lambda *args: b.push(*args))(box), namespace=ns)
        c.connect(url, namespaces=namespaces or ["/"], wait_timeout=WAIT, **connect_kwargs)
        return c, inboxes

    yield make
    for c in made:
        try:
            c.disconnect()
        except Exception:  # already gone
            pass


def call(client, event: str, *args, namespace: str = "/"):
    """Emit with an ack and return the ack's (single) value."""
    return client.call(event, args if len(args) != 1 else args[0], namespace=namespace, timeout=WAIT)


__all__ = ["Inbox", "call", "queue"]

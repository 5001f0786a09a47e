'use strict';
// SIGTERM is a lame-duck drain: the hub reports not ready and refuses new sessions at once, keeps
// serving the clients it has (WebSocket and long-polling), and closes them evenly paced over
// `drain_period_ms` — not in one burst that would send every client to the survivors at once.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startHub } = require('../harness/hub');
const { Clients, once } = require('../harness/client');

test('SIGTERM closes clients evenly over drain_period_ms and refuses new sessions meanwhile', async () => {
  const hub = await startHub({ drain_period_ms: 2000, shutdown_grace_ms: 5000 });
  const clients = new Clients();
  try {
    const n = 40;
    const sockets = [];
    for (let i = 0; i < n; i++) {
      const transports = i % 4 === 0 ? ['polling'] : ['websocket'];
      sockets.push(await clients.connect(hub.url, { transports, reconnection: false }));
    }
    const closedAt = [];
    const reasons = new Set();
    const all = Promise.all(sockets.map((s) => once(s, 'disconnect', 15000).then(([reason]) => {
      closedAt.push(Date.now());
      reasons.add(reason);
    })));
    const t0 = Date.now();
    hub.child.kill('SIGTERM');
    // Lame duck: not ready, new sessions refused, while the clients are still being served.
    await new Promise((r) => setTimeout(r, 300));
    const ready = await fetch(`${hub.adminUrl}/readyz`);
    assert.equal(ready.status, 503, 'not ready while draining');
    const handshake = await fetch(`${hub.url}/socket.io/?EIO=4&transport=polling`);
    assert.equal(handshake.status, 503, 'a new session is refused while draining');
    assert.ok(sockets.some((s) => s.connected), 'clients are still connected 300 ms in');
    await all;
    closedAt.sort((a, b) => a - b);
    const spread = closedAt[n - 1] - closedAt[0];
    assert.ok(spread >= 1400, `disconnects spread over ${spread} ms (want about 2000)`);
    // No burst: at most a third of the clients in any 250 ms window.
    let worst = 0;
    for (let i = 0; i < n; i++) {
      let j = i;
      while (j < n && closedAt[j] - closedAt[i] < 250) j++;
      worst = Math.max(worst, j - i);
    }
    assert.ok(worst <= Math.ceil(n / 3), `${worst} of ${n} clients closed within 250 ms`);
    assert.ok(closedAt[n - 1] - t0 < 4500, 'every client closed within the grace');
    assert.ok(reasons.size > 0);
  } finally {
    clients.closeAll();
    await hub.close();
  }
});

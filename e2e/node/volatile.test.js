'use strict';
// Volatile emits: they may be dropped, never duplicated or reordered.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startHub } = require('../harness/hub');
const { Clients, call, collector } = require('../harness/client');

let hub;
const clients = new Clients();
before(async () => { hub = await startHub({ permissions: [{ namespace: '/', join: ['*'], emit: ['*'] }] }); });
after(async () => { if (hub) await hub.close(); });
afterEach(() => clients.closeAll());

for (const transport of ['websocket', 'polling']) {
  test(`client volatile emits over ${transport} arrive at most once and in order`, async () => {
    const sender = await clients.connect(hub.url, { transports: [transport] });
    const receiver = await clients.connect(hub.url, { transports: ['websocket'] });
    assert.deepEqual(await call(receiver, 'hub:join', 'vol'), { ok: true });
    const ticks = collector(receiver, 'tick');
    const done = collector(receiver, 'done');
    for (let i = 0; i < 200; i += 1) sender.volatile.emit('hub:to', 'vol', 'tick', i);
    assert.deepEqual(await call(sender, 'hub:to', 'vol', 'done'), { ok: true });
    await done.until(1);
    const seen = ticks.got.map((a) => a[0]);
    assert.ok(seen.length >= 1, 'the first volatile emit on a writable transport reaches the hub');
    for (let k = 1; k < seen.length; k += 1) {
      assert.ok(seen[k] > seen[k - 1], `volatile packets reordered or duplicated: ${seen.slice(0, 50)}`);
    }
  });
}

'use strict';
// Binary attachments at nested depth, through the hub in both directions (client→hub→client),
// over WebSocket (binary frames) and polling (base64 "b" packets).

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startHub } = require('../harness/hub');
const { Clients, call, once } = require('../harness/client');

let hub;
const clients = new Clients();
before(async () => { hub = await startHub({ permissions: [{ namespace: '/', join: ['*'], emit: ['*'] }] }); });
after(async () => { if (hub) await hub.close(); });
afterEach(() => clients.closeAll());

const bytes = (n, seed) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

for (const [senderT, receiverT] of [['websocket', 'websocket'], ['polling', 'polling'], ['polling', 'websocket'], ['websocket', 'polling']]) {
  test(`nested binary ${senderT} → ${receiverT}`, async () => {
    const sender = await clients.connect(hub.url, { transports: [senderT] });
    const receiver = await clients.connect(hub.url, { transports: [receiverT] });
    assert.deepEqual(await call(receiver, 'hub:join', 'bin'), { ok: true });
    const big = bytes(70000, 7);
    const ab = new Uint8Array(bytes(16, 3)).buffer;
    const payload = {
      name: 'nested',
      file: bytes(5, 1),
      list: [1, bytes(0, 0), { deep: [{ deeper: ab }] }],
      big,
    };
    const got = once(receiver, 'blob');
    assert.deepEqual(await call(sender, 'hub:to', 'bin', 'blob', payload, bytes(3, 9), 'tail'), { ok: true });
    const [obj, top, tail] = await got;
    const eq = (x, want) => assert.ok(Buffer.from(x).equals(Buffer.from(want)), `bytes differ: ${Buffer.from(x).toString('hex').slice(0, 40)}`);
    assert.equal(obj.name, 'nested');
    eq(obj.file, bytes(5, 1));
    assert.equal(obj.list[0], 1);
    eq(obj.list[1], bytes(0, 0));
    eq(obj.list[2].deep[0].deeper, Buffer.from(ab));
    eq(obj.big, big);
    eq(top, bytes(3, 9));
    assert.equal(tail, 'tail');
  });
}

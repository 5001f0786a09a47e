'use strict';
// Transports: polling only, WebSocket only, and the polling→WebSocket upgrade with emits in flight.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startHub } = require('../harness/hub');
const { Clients, call, collector, once } = require('../harness/client');

const config = { permissions: [{ namespace: '/', join: ['*'], emit: ['*'] }] };
let hub;
const clients = new Clients();
before(async () => { hub = await startHub(config); });
after(async () => { await hub.close(); });
afterEach(() => clients.closeAll());

async function roundTrip(sender, receiver, room) {
  assert.deepEqual(await call(receiver, 'hub:join', room), { ok: true });
  const got = once(receiver, 'hello');
  assert.deepEqual(await call(sender, 'hub:to', room, 'hello', { from: sender.id }, 42), { ok: true });
  assert.deepEqual(await got, [{ from: sender.id }, 42]);
}

test('polling only: connect, join, send and receive', async () => {
  const a = await clients.connect(hub.url, { transports: ['polling'] });
  const b = await clients.connect(hub.url, { transports: ['polling'] });
  assert.equal(a.io.engine.transport.name, 'polling');
  await roundTrip(a, b, 'poll-room');
  await roundTrip(b, a, 'poll-room-2');
  assert.equal(a.io.engine.transport.name, 'polling', 'a polling-only client must never upgrade');
});

test('websocket only: connect, join, send and receive', async () => {
  const a = await clients.connect(hub.url, { transports: ['websocket'] });
  const b = await clients.connect(hub.url, { transports: ['websocket'] });
  assert.equal(a.io.engine.transport.name, 'websocket');
  await roundTrip(a, b, 'ws-room');
  await roundTrip(b, a, 'ws-room-2');
});

test('polling and websocket clients talk to each other', async () => {
  const a = await clients.connect(hub.url, { transports: ['polling'] });
  const b = await clients.connect(hub.url, { transports: ['websocket'] });
  await roundTrip(a, b, 'mixed-1');
  await roundTrip(b, a, 'mixed-2');
});

test('upgrade from polling to websocket with emits in flight loses nothing and keeps order', async () => {
  const receiver = await clients.connect(hub.url, { transports: ['websocket'] });
  assert.deepEqual(await call(receiver, 'hub:join', 'upgrade-seq'), { ok: true });
  const seq = collector(receiver, 'n');

  const sender = clients.socket(hub.url, { transports: ['polling', 'websocket'] });
  const upgraded = once(sender.io, 'open').then(() => once(sender.io.engine, 'upgrade'));
  let i = 0;
  // Emit before the connection is even open (buffered), while polling, during the upgrade probe,
  // and after it: every packet must reach the receiver once, in order.
  const pump = () => { for (let k = 0; k < 20; k += 1) sender.emit('hub:to', 'upgrade-seq', 'n', i++); };
  pump();
  sender.on('connect', pump);
  sender.io.on('open', () => sender.io.engine.on('upgrading', pump));
  await upgraded;
  assert.equal(sender.io.engine.transport.name, 'websocket');
  pump();
  // A final emit with an ack: once acked, the hub has forwarded everything sent before it.
  const total = i;
  assert.deepEqual(await call(sender, 'hub:to', 'upgrade-seq', 'n', 'end'), { ok: true });
  const got = await seq.until(total + 1);
  assert.deepEqual(got.map((a) => a[0]), [...Array.from({ length: total }, (_, k) => k), 'end']);
});

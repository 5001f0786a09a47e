'use strict';
// Transports: polling only, WebSocket only, and the polling→WebSocket upgrade with emits in flight.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startHub } = require('../harness/hub');
const WebSocket = require('ws');
const { Clients, call, collector, once, withTimeout } = require('../harness/client');
const { open, poll } = require('../harness/raw');

const config = { permissions: [{ namespace: '/', join: ['*'], emit: ['*'] }] };
let hub;
const clients = new Clients();
before(async () => { hub = await startHub(config); });
after(async () => { if (hub) await hub.close(); });
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

test('a raw client upgrading mid-stream receives every broadcast once, in order (polling, probe, then websocket)', async () => {
  // Raw Engine.IO so that the upgrade happens exactly while packets are flowing: the session is
  // in the room and receiving over polling before the probe, during it, and after "5".
  const { sid } = await open(hub.url);
  const post = (body) => poll(hub.url, { method: 'POST', sid, body });
  const numbers = [];
  const take = (packet) => {
    const m = /^42\["n",(\d+)\]$/.exec(packet);
    if (m) numbers.push(Number(m[1]));
  };
  const drain = async () => {
    const r = await poll(hub.url, { sid });
    assert.equal(r.status, 200, r.text);
    r.text.split('\x1e').forEach(take);
    return r.text;
  };
  await post('40');
  await drain(); // the CONNECT reply
  await post('420["hub:join","raw-upgrade"]');
  const sender = await clients.connect(hub.url, { transports: ['websocket'] });
  let stop = false;
  const pump = (async () => {
    let i = 0;
    while (!stop) {
      for (let k = 0; k < 10; k += 1) sender.emit('hub:to', 'raw-upgrade', 'n', i++);
      await call(sender, 'hub:to', 'raw-upgrade', 'n', i++);
    }
  })();
  try {
    while (numbers.length < 30) await drain();
    const beforeProbe = numbers.length;
    const ws = new WebSocket(`${hub.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket&sid=${sid}`);
    const frames = [];
    let wake = () => {};
    ws.on('message', (d) => { frames.push(d.toString()); wake(); });
    await withTimeout(new Promise((r) => ws.once('open', r)), 'websocket open');
    ws.send('2probe');
    await withTimeout(new Promise((r) => { wake = () => frames.includes('3probe') && r(); wake(); }), '3probe');
    // Packets still go to polling until "5": drain once more (the hub may answer with a noop).
    await drain();
    frames.splice(0, frames.indexOf('3probe') + 1);
    ws.send('5');
    const target = numbers.length + 100;
    await withTimeout(new Promise((r) => {
      wake = () => { while (frames.length) take(frames.shift()); if (numbers.length >= target) r(); };
      wake();
    }), `100 packets over the websocket (have ${numbers.length})`);
    stop = true;
    await pump;
    ws.close();
    assert.ok(beforeProbe >= 30);
    for (let k = 1; k < numbers.length; k += 1) {
      assert.equal(numbers[k], numbers[k - 1] + 1, `gap or reorder at ${k} (probe at ${beforeProbe}): ${numbers.slice(Math.max(0, k - 3), k + 3)}`);
    }
  } finally {
    stop = true;
    await pump;
  }
});

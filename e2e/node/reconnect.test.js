'use strict';
// Reconnection after the hub restarts, and connection state recovery.

const { test, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startHub } = require('../harness/hub');
const { Clients, call, once, connected } = require('../harness/client');
const { rawConnect } = require('../harness/raw');

const permissions = [{ namespace: '/', join: ['*'], emit: ['*'] }];
const clients = new Clients();
const hubs = [];
afterEach(async () => {
  clients.closeAll();
  for (const h of hubs.splice(0)) await h.close();
});
const start = async (cfg) => { const h = await startHub(cfg); hubs.push(h); return h; };

for (const transport of ['websocket', 'polling']) {
  test(`a ${transport} client reconnects after the hub restarts`, async () => {
    const hub = await start({ permissions });
    const s = await clients.connect(hub.url, {
      transports: [transport], reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 500,
    });
    const firstId = s.id;
    const disconnected = once(s, 'disconnect');
    const reconnected = disconnected.then(() => once(s, 'connect', 30000));
    await hub.restart();
    const [reason] = await disconnected;
    assert.ok(['transport close', 'transport error', 'io server disconnect', 'ping timeout'].includes(reason), `disconnect reason: ${reason}`);
    await reconnected;
    assert.notEqual(s.id, firstId, 'a new hub process gives a new session');
    const peer = await clients.connect(hub.url);
    assert.deepEqual(await call(s, 'hub:join', 'after-restart'), { ok: true });
    const got = once(s, 'hi');
    assert.deepEqual(await call(peer, 'hub:to', 'after-restart', 'hi', 1), { ok: true });
    assert.deepEqual(await got, [1]);
  });
}

test('with recovery off, the CONNECT reply is exactly {"sid": …}', async () => {
  const hub = await start({ permissions });
  const { connect } = await rawConnect(hub.url);
  assert.deepEqual(Object.keys(connect), ['sid']);
  assert.equal(typeof connect.sid, 'string');
});

test('with recovery on, the CONNECT reply carries a pid', async () => {
  const hub = await start({ permissions, socketio: { recovery: { enabled: true } } });
  const { connect } = await rawConnect(hub.url);
  assert.equal(typeof connect.sid, 'string');
  assert.equal(typeof connect.pid, 'string');
});

for (const transport of ['websocket', 'polling']) {
  test(`connection state recovery over ${transport}: rooms kept and missed packets replayed`, async () => {
    const hub = await start({ permissions, socketio: { recovery: { enabled: true, max_disconnection_ms: 60000 } } });
    // Reconnection is manual so that the broadcast surely happens while the client is away.
    const s = await clients.connect(hub.url, { transports: [transport] });
    const peer = await clients.connect(hub.url);
    assert.ok(!s.recovered);
    assert.deepEqual(await call(s, 'hub:join', 'keep'), { ok: true });
    const firstId = s.id;
    // A packet received before the drop gives the client an offset to recover from.
    const first = once(s, 'news');
    assert.deepEqual(await call(peer, 'hub:to', 'keep', 'news', 'before'), { ok: true });
    // With recovery on, each event carries its offset as a trailing string argument.
    const [before, offset] = await first;
    assert.equal(before, 'before');
    assert.equal(typeof offset, 'string', 'the packet carries a recovery offset');

    const gone = once(s, 'disconnect');
    s.io.engine.close(); // abrupt: no Socket.IO DISCONNECT packet is sent
    await gone;
    assert.deepEqual(await call(peer, 'hub:to', 'keep', 'news', 'missed-1'), { ok: true });
    assert.deepEqual(await call(peer, 'hub:to', 'keep', 'news', 'missed-2'), { ok: true });

    const replay = [];
    s.on('news', (v) => replay.push(v));
    s.connect();
    await connected(s);
    assert.equal(s.recovered, true, 'socket.recovered');
    assert.equal(s.id, firstId, 'a recovered socket keeps its id');
    const live = once(s, 'news-live');
    assert.deepEqual(await call(peer, 'hub:to', 'keep', 'news-live', 'after'), { ok: true });
    assert.equal((await live)[0], 'after', 'the recovered socket is still in its room');
    assert.deepEqual(replay, ['missed-1', 'missed-2']);
  });
}

test('without recovery, a reconnecting client is a new socket and has lost its rooms', async () => {
  const hub = await start({ permissions });
  const s = await clients.connect(hub.url, { transports: ['websocket'] });
  const peer = await clients.connect(hub.url);
  await call(s, 'hub:join', 'lost');
  const firstId = s.id;
  const gone = once(s, 'disconnect');
  s.io.engine.close();
  await gone;
  s.connect();
  await connected(s);
  assert.ok(!s.recovered);
  assert.notEqual(s.id, firstId);
  await call(s, 'hub:join', 'barrier');
  const got = [];
  s.on('m', (v) => got.push(v));
  const barrier = once(s, 'm2');
  await call(peer, 'hub:to', 'lost', 'm', 'not-a-member-any-more');
  await call(peer, 'hub:to', 'barrier', 'm2', 'end');
  await barrier;
  assert.deepEqual(got, []);
});

'use strict';
// Engine.IO timers and limits seen from a raw client: the handshake's values, heartbeat, the
// namespace connect timeout, and max_sessions.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { startHub, IMPL } = require('../harness/hub');
const { Clients, call, once, withTimeout } = require('../harness/client');
const { poll, open } = require('../harness/raw');

let hub;
const clients = new Clients();
const sockets = [];
before(async () => {
  hub = await startHub({
    engine: { ping_interval_ms: 300, ping_timeout_ms: 400, max_payload: 12345 },
    socketio: { connect_timeout_ms: 800 },
    permissions: [{ namespace: '/', join: ['*'], emit: ['*'] }],
  });
});
after(async () => { if (hub) await hub.close(); });
afterEach(() => {
  for (const ws of sockets.splice(0)) ws.terminate();
  clients.closeAll();
});

function rawWs() {
  const ws = new WebSocket(`${hub.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
  sockets.push(ws);
  ws.closed = new Promise((resolve) => ws.on('close', resolve));
  return ws;
}

test('the open packet carries the configured timers and limits', async () => {
  const o = await open(hub.url);
  assert.equal(typeof o.sid, 'string');
  assert.deepEqual(o.upgrades, ['websocket']);
  assert.equal(o.pingInterval, 300);
  assert.equal(o.pingTimeout, 400);
  assert.equal(o.maxPayload, 12345);
});

test('heartbeat: a client that answers pings stays, one that does not is closed', async () => {
  const good = rawWs();
  const bad = rawWs();
  // Both join "/" so that the connect timeout cannot be what closes them.
  for (const ws of [good, bad]) ws.on('message', (d) => { if (d.toString().startsWith('0')) ws.send('40'); });
  let goodPings = 0;
  const threePings = new Promise((resolve) => {
    good.on('message', (d) => {
      const f = d.toString();
      if (f === '2') {
        good.send('3');
        goodPings += 1;
        if (goodPings === 3) resolve();
      }
    });
  });
  let badClosedAt = null;
  bad.closed.then(() => { badClosedAt = goodPings; });
  await withTimeout(threePings, 'three pings');
  await withTimeout(bad.closed, 'the silent client to be closed');
  assert.equal(good.readyState, WebSocket.OPEN, 'the answering client is still open');
  assert.ok(badClosedAt !== null);
});

test('a socket.io-client with short timers stays connected across several heartbeats', async () => {
  const s = await clients.connect(hub.url, { transports: ['polling'] });
  for (let i = 0; i < 3; i += 1) await once(s.io.engine, 'ping');
  assert.ok(s.connected);
  assert.deepEqual(await call(s, 'hub:join', 'still-here'), { ok: true });
});

test('an Engine.IO session that never connects a namespace is closed after connect_timeout_ms', async () => {
  const ws = rawWs();
  // Answer pings so that only the connect timeout can close the session.
  ws.on('message', (d) => { if (d.toString() === '2') ws.send('3'); });
  await withTimeout(ws.closed, 'the connect timeout to close the session', 10000);
});

const noLimit = IMPL === 'reference' ? 'Node engine.io has no session limit' : false;

test('max_sessions: handshakes beyond it are refused with 503', { skip: noLimit }, async () => {
  const h = await startHub({ engine: { max_sessions: 2 } });
  try {
    await open(h.url);
    await open(h.url);
    const r = await poll(h.url);
    assert.equal(r.status, 503, `third handshake: ${r.status} ${r.text}`);
  } finally {
    await h.close();
  }
});

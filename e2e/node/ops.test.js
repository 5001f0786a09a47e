'use strict';
// Operations: the admin port (/healthz, /readyz, /metrics) and graceful shutdown on SIGTERM.

const { test, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startHub } = require('../harness/hub');
const { Clients, once, withTimeout } = require('../harness/client');

const clients = new Clients();
const hubs = [];
afterEach(async () => {
  clients.closeAll();
  for (const h of hubs.splice(0)) await h.close();
});
const start = async (cfg = {}) => { const h = await startHub(cfg); hubs.push(h); return h; };
const get = async (url) => {
  const r = await withTimeout(fetch(url), url);
  return { status: r.status, text: await r.text(), type: r.headers.get('content-type') };
};

test('/healthz and /readyz answer 200 on the admin port, not on the client port', async () => {
  const hub = await start();
  assert.equal((await get(`${hub.adminUrl}/healthz`)).status, 200);
  assert.equal((await get(`${hub.adminUrl}/readyz`)).status, 200);
  assert.equal((await get(`${hub.adminUrl}/nope`)).status, 404);
});

test('/metrics is Prometheus text and counts connections by transport', async () => {
  const hub = await start();
  await clients.connect(hub.url, { transports: ['websocket'] });
  const m = await get(`${hub.adminUrl}/metrics`);
  assert.equal(m.status, 200);
  assert.match(m.type, /^text\/plain/);
  assert.match(m.text, /^# TYPE \S+ (gauge|counter|histogram)/m);
  const ws = /^socketio_hub_connections\{[^}]*transport="websocket"[^}]*\} (\d+)/m.exec(m.text);
  assert.ok(ws, `no socketio_hub_connections{transport="websocket"} series in:\n${m.text.slice(0, 2000)}`);
  assert.ok(Number(ws[1]) >= 1);
});

test('SIGTERM: clients are closed so that they reconnect elsewhere, and the hub exits 0', async () => {
  const hub = await start({ shutdown_grace_ms: 2000 });
  const s = await clients.connect(hub.url, { transports: ['websocket'] });
  const gone = once(s, 'disconnect', 15000);
  const status = hub.stop(15000);
  const [reason] = await gone;
  assert.notEqual(reason, 'io server disconnect', 'a Socket.IO DISCONNECT would stop the client from reconnecting');
  assert.deepEqual(await status, { code: 0, signal: null });
});

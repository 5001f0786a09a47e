'use strict';
// Serverless mode: the hub calls the application's webhook (connect, connected, event,
// disconnected), signed with the access keys; the test app in e2e/app plays the application.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { startHub, ACCESS_KEY, SECOND_KEY, IMPL } = require('../harness/hub');
const { Clients, call, once, connectError, signJwt } = require('../harness/client');
const { startApp } = require('../app/app');
const { verifyWebhook } = require('../app/verify');

let app;
let hub;
const clients = new Clients();
const extraHubs = [];
before(async () => {
  // `enforce`: every call must pass the documented verifier, or the app answers 401 — so every
  // test below also proves that genuine calls verify.
  app = await startApp({ keys: [ACCESS_KEY, SECOND_KEY], enforce: true });
  hub = await startHub({
    upstream: { mode: 'webhook', webhook_url: app.url, webhook_timeout_ms: 3000 },
    auth: { access_keys: [ACCESS_KEY, SECOND_KEY] },
    permissions: [{ namespace: '/', emit: ['*'], join: ['*'] }],
  });
});
after(async () => {
  if (hub) await hub.close();
  if (app) await app.close();
});
afterEach(async () => {
  clients.closeAll();
  for (const h of extraHubs.splice(0)) await h.close();
  app.handlers.connect = () => ({ status: 200, body: {} });
  app.handlers.event = () => ({ status: 200, body: [] });
});

test('connect webhook: CloudEvents headers, signatures with both keys, handshake body', async () => {
  const s = await clients.connect(hub.url, { auth: { name: 'ann' }, query: { q: '1' }, extraHeaders: { 'x-e2e': 'yes' } });
  const c = await app.waitFor('connect', (b) => b.sid === s.id);
  assert.equal(c.method, 'POST');
  assert.match(c.headers['content-type'], /^application\/json/);
  assert.equal(c.headers['ce-specversion'], '1.0');
  assert.equal(c.headers['ce-type'], 'socketio.connect');
  for (const h of ['ce-id', 'ce-source', 'ce-time', 'ce-timestamp']) assert.ok(c.headers[h], `${h} header`);
  assert.ok(Math.abs(Number(c.headers['ce-timestamp']) - Date.now() / 1000) < 60, 'ce-timestamp is now, in seconds');
  assert.equal(c.verdict, null, 'the documented verifier accepts the call');
  assert.ok(!Number.isNaN(Date.parse(c.headers['ce-time'])), 'ce-time is a timestamp');
  assert.deepEqual(c.signedBy, [ACCESS_KEY, SECOND_KEY], `ce-signature ${c.headers['ce-signature']}`);
  const b = c.body;
  assert.equal(b.type, 'connect');
  assert.equal(b.namespace, '/');
  assert.equal(b.handshake.auth.name, 'ann');
  assert.equal(b.handshake.query.q, '1');
  assert.equal(b.handshake.headers['x-e2e'], 'yes');
  assert.equal(typeof b.handshake.address, 'string');
  assert.ok(b.handshake.time !== undefined, 'handshake.time');
  assert.equal(typeof b.handshake.url, 'string');
  assert.equal(b.handshake.claims, null);

  const connected = await app.waitFor('connected', (x) => x.sid === s.id);
  assert.equal(connected.headers['ce-type'], 'socketio.connected');
  assert.equal(connected.body.namespace, '/');
  assert.notEqual(connected.headers['ce-id'], c.headers['ce-id'], 'each call has its own ce-id');
});

test('connect webhook carries the claims of a valid client token', async () => {
  const s = await clients.connect(hub.url, { auth: { token: signJwt({ sub: 'user-7', role: 'x' }, ACCESS_KEY) } });
  const c = await app.waitFor('connect', (b) => b.sid === s.id);
  assert.equal(c.body.handshake.claims.sub, 'user-7');
  assert.equal(c.body.handshake.claims.role, 'x');
});

test('the app rejects a connection: connect_error with its message and data', async () => {
  app.handlers.connect = (b) => (b.handshake.auth.pass === 'ok' ? { status: 200 } : { status: 403, body: { message: 'go away', data: { code: 42, why: ['x'] } } });
  const err = await connectError(clients.socket(hub.url, { auth: { pass: 'no' } }));
  assert.equal(err.message, 'go away');
  assert.deepEqual(err.data, { code: 42, why: ['x'] });
  const ok = await clients.connect(hub.url, { auth: { pass: 'ok' } });
  assert.ok(ok.connected);
});

test('the app accepts with rooms: the socket is in them', async () => {
  app.handlers.connect = () => ({ status: 200, body: { rooms: ['vip', 'gold'] } });
  const s = await clients.connect(hub.url);
  app.handlers.connect = () => ({ status: 200, body: {} });
  const peer = await clients.connect(hub.url);
  const got = once(s, 'perk');
  assert.deepEqual(await call(peer, 'hub:to', 'gold', 'perk', 'for-gold'), { ok: true });
  assert.equal((await got)[0], 'for-gold');
});

test('event webhook without ack, and with ack: the response body is the ack arguments', async () => {
  app.handlers.event = (b) => ({ status: 200, body: b.event === 'ask' ? ['pong', { n: b.args[0].n + 1 }] : [] });
  const s = await clients.connect(hub.url);
  s.emit('tell', { text: 'hi' }, [1, 2]);
  const tell = await app.waitFor('event', (b) => b.sid === s.id && b.event === 'tell');
  assert.equal(tell.headers['ce-type'], 'socketio.event');
  assert.deepEqual(tell.body, { type: 'event', namespace: '/', sid: s.id, event: 'tell', args: [{ text: 'hi' }, [1, 2]], ack: false });
  const ackArgs = await new Promise((resolve, reject) => {
    s.timeout(10000).emit('ask', { n: 1 }, (err, ...args) => (err ? reject(err) : resolve(args)));
  });
  assert.deepEqual(ackArgs, ['pong', { n: 2 }]);
  const ask = await app.waitFor('event', (b) => b.sid === s.id && b.event === 'ask');
  assert.equal(ask.body.ack, true);
});

test('binary travels as {"_binary": base64} both ways', async () => {
  app.handlers.event = (b) => ({ status: 200, body: [{ echo: b.args, extra: { _binary: Buffer.from('from-app').toString('base64') } }] });
  const s = await clients.connect(hub.url, { transports: ['websocket'] });
  const bytes = Buffer.from([0, 1, 2, 250, 255]);
  const res = await call(s, 'upload', { file: bytes, list: [Buffer.from('x')] });
  const ev = await app.waitFor('event', (b) => b.sid === s.id && b.event === 'upload');
  assert.deepEqual(ev.body.args, [{ file: { _binary: bytes.toString('base64') }, list: [{ _binary: Buffer.from('x').toString('base64') }] }]);
  assert.ok(Buffer.from(res.extra).equals(Buffer.from('from-app')));
  assert.ok(Buffer.from(res.echo[0].file).equals(bytes));
});

test('disconnected webhook with the reason', async () => {
  const s = await clients.connect(hub.url);
  const sid = s.id;
  s.disconnect();
  const d = await app.waitFor('disconnected', (b) => b.sid === sid);
  assert.equal(d.headers['ce-type'], 'socketio.disconnected');
  assert.equal(d.body.namespace, '/');
  assert.equal(typeof d.body.reason, 'string');
  assert.match(d.body.reason, /client namespace disconnect/);
});

async function unavailable(webhookUrl, extra = {}) {
  const h = await startHub({
    upstream: { mode: 'webhook', webhook_url: webhookUrl, webhook_timeout_ms: 500, ...extra },
    permissions: [{ namespace: '/', join: ['*'] }],
  });
  extraHubs.push(h);
  const err = await connectError(clients.socket(h.url));
  assert.match(err.message, /^upstream unavailable/);
  assert.equal(h.child.exitCode, null, 'the hub is still running');
  const m = await fetch(`${h.adminUrl}/metrics`);
  assert.equal(m.status, 200);
  return h;
}

test('webhook down: connect_error "upstream unavailable…", hub healthy', async () => {
  const port = await new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => { const p = srv.address().port; srv.close(() => resolve(p)); });
  });
  await unavailable(`http://127.0.0.1:${port}/webhook`);
});

test('webhook slow: connect_error after webhook_timeout_ms', async () => {
  let release;
  const held = new Promise((r) => { release = r; });
  app.handlers.connect = () => held.then(() => ({ status: 200 }));
  try {
    await unavailable(app.url);
  } finally {
    release();
  }
});

test('webhook answers garbage: connect_error', async () => {
  app.handlers.connect = () => ({ status: 200, body: 'this is not json {' });
  await unavailable(app.url);
});

test('webhook answers 500: connect_error', async () => {
  app.handlers.connect = () => ({ status: 500, body: { message: 'boom' } });
  await unavailable(app.url);
});

test('webhooks name the namespace the client joined', async () => {
  const s = await clients.connect(`${hub.url}/shop`);
  const c = await app.waitFor('connect', (b) => b.sid === s.id);
  assert.equal(c.body.namespace, '/shop');
  s.emit('buy', 1);
  const e = await app.waitFor('event', (b) => b.sid === s.id);
  assert.equal(e.body.namespace, '/shop');
  assert.equal(e.body.event, 'buy');
});

test('an event whose webhook fails is dropped; the socket keeps working', async () => {
  app.handlers.event = (b) => (b.event === 'fails' ? { status: 500, body: { message: 'boom' } } : { status: 200, body: ['fine'] });
  const s = await clients.connect(hub.url);
  const failed = new Promise((resolve) => {
    s.timeout(1500).emit('fails', 1, (err) => resolve(err));
  });
  await app.waitFor('event', (b) => b.sid === s.id && b.event === 'fails');
  const err = await failed;
  assert.ok(err instanceof Error, 'no ack arrives for a failed webhook');
  const again = await new Promise((resolve, reject) => {
    s.timeout(10000).emit('works', (e, ...args) => (e ? reject(e) : resolve(args)));
  });
  assert.deepEqual(again, ['fine']);
  assert.ok(s.connected);
});

/** Re-send a recorded call to the app as an attacker would, with `change` applied. */
async function resend(call, change = {}) {
  const headers = {};
  for (const [k, v] of Object.entries(call.headers)) {
    if (k.startsWith('ce-') || k === 'content-type') headers[k] = v;
  }
  Object.assign(headers, change.headers || {});
  const res = await fetch(app.url, { method: 'POST', headers, body: change.body || call.raw });
  return { status: res.status, body: await res.json().catch(() => null) };
}

test('replays, tampered headers or bodies and stale timestamps are refused by the documented verifiers', async () => {
  const s = await clients.connect(hub.url);
  s.emit('tell', 'once');
  const good = await app.waitFor('event', (b) => b.sid === s.id && b.event === 'tell');
  assert.equal(good.verdict, null, 'the genuine call was accepted');
  const before = app.calls.length;

  // Over HTTP, against the app's enforcing verifier (verify.js, the code in docs/webhooks.md).
  assert.deepEqual(await resend(good), { status: 401, body: { message: 'replayed' } });
  for (const change of [
    { headers: { 'ce-type': 'socketio.disconnected' } },
    { headers: { 'ce-id': `${good.headers['ce-id']}0` } }, // a fresh id does not get past the MAC
    { headers: { 'ce-source': '/socketio-hub/elsewhere' } },
    { headers: { 'ce-timestamp': String(Number(good.headers['ce-timestamp']) + 1) } },
    { body: Buffer.from(good.raw.toString().replace('once', 'twice')) },
  ]) {
    assert.deepEqual(await resend(good, change), { status: 401, body: { message: 'bad signature' } }, JSON.stringify(change));
  }
  assert.equal(app.calls.length, before, 'no refused call reached a handler');
  // Stale: the same genuine call, verified 301 s after its timestamp.
  const later = (Number(good.headers['ce-timestamp']) + 301) * 1000;
  assert.equal(verifyWebhook(good.headers, good.raw, [ACCESS_KEY], new Map(), { now: later }), 'stale ce-timestamp');
  assert.equal(verifyWebhook(good.headers, good.raw, [SECOND_KEY], new Map()), null, 'either key verifies');
  assert.equal(verifyWebhook(good.headers, good.raw, ['not-a-key-of-this-hub-0123456789'], new Map()), 'bad signature');

  // The Python verifier (verify.py, the other code in docs/webhooks.md) on the same calls.
  const asCall = (c, over = {}) => JSON.stringify({
    headers: { ...c.headers, ...(over.headers || {}) }, body: Buffer.from(over.body || c.raw).toString('base64'),
    keys: over.keys || [ACCESS_KEY, SECOND_KEY], now: over.now,
  });
  const lines = [
    asCall(good),
    asCall(good),
    asCall(good, { headers: { 'ce-type': 'socketio.connect', 'ce-id': 'fresh' } }),
    asCall(good, { body: Buffer.from('{}') }),
    asCall(good, { now: Number(good.headers['ce-timestamp']) + 301 }),
    asCall(good, { keys: ['not-a-key-of-this-hub-0123456789'] }),
  ];
  const out = execFileSync('python3', [path.join(__dirname, '..', 'app', 'verify_cli.py')], { input: `${lines.join('\n')}\n` });
  // (The Python verifier keeps its own table of seen ids, so the first line is fresh to it.)
  assert.deepEqual(out.toString().trim().split('\n').map((l) => JSON.parse(l).verdict),
    [null, 'replayed', 'bad signature', 'bad signature', 'stale ce-timestamp', 'bad signature']);
});

test('docs/webhooks.md shows exactly the verifiers the tests run', () => {
  const doc = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'webhooks.md'), 'utf8');
  for (const file of ['verify.js', 'verify.py']) {
    const code = fs.readFileSync(path.join(__dirname, '..', 'app', file), 'utf8').replace("\nmodule.exports = { verifyWebhook };\n", '');
    assert.ok(doc.includes(code.trim()), `docs/webhooks.md must contain e2e/app/${file} verbatim`);
  }
});

test('ce-id is unique across restarts under the same node name', async () => {
  const ids = [];
  for (let i = 0; i < 2; i += 1) {
    const h = await startHub({
      upstream: { mode: 'webhook', webhook_url: app.url, webhook_timeout_ms: 3000 },
      auth: { access_keys: [ACCESS_KEY, SECOND_KEY] },
      cluster: { node_name: 'same-node' },
    });
    const s = await clients.connect(h.url);
    const c = await app.waitFor('connect', (b) => b.sid === s.id);
    if (IMPL === 'hub') assert.equal(c.headers['ce-source'], '/socketio-hub/same-node');
    ids.push(c.headers['ce-id']);
    s.disconnect();
    await h.close();
  }
  if (IMPL === 'hub') assert.match(ids[0], /^\/socketio-hub\/same-node-[0-9a-f]{16}-1$/);
  assert.notEqual(ids[0], ids[1], 'the second process does not reuse the first one\'s ids');
});

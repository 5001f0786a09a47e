'use strict';
// Bad input over raw HTTP and WebSocket: the protocol's error answers or a clean close, and the hub
// keeps serving everyone else. After every test a fresh client must connect and work, and the
// admin port's /metrics must answer.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { startHub, IMPL } = require('../harness/hub');
const { Clients, call, once, collector, withTimeout } = require('../harness/client');
const { poll, open } = require('../harness/raw');

const MAX_PAYLOAD = 20000;
const config = {
  engine: { max_payload: MAX_PAYLOAD, max_queued_frames: 64, max_queued_bytes: 256 * 1024, ping_interval_ms: 60000, ping_timeout_ms: 60000 },
  socketio: { max_attachments: 2 },
  permissions: [{ namespace: '/', join: ['*'], emit: ['*'] }],
};
let hub;
const clients = new Clients();
const sockets = [];
before(async () => { hub = await startHub(config); });
after(async () => { if (hub) await hub.close(); });
afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  clients.closeAll();
  await stillHealthy();
});

async function stillHealthy() {
  assert.equal(hub.child.exitCode, null, `the hub exited:\n${hub.log()}`);
  const a = await clients.connect(hub.url);
  const b = await clients.connect(hub.url, { transports: ['polling'] });
  assert.deepEqual(await call(b, 'hub:join', 'health'), { ok: true });
  const got = once(b, 'ping-health');
  assert.deepEqual(await call(a, 'hub:to', 'health', 'ping-health', 1), { ok: true });
  assert.deepEqual(await got, [1]);
  clients.closeAll();
  const m = await withTimeout(fetch(`${hub.adminUrl}/metrics`), '/metrics');
  assert.equal(m.status, 200);
  assert.ok((await m.text()).length > 0, '/metrics has a body');
}

const hubOnly = IMPL === 'reference' ? 'Node socket.io has no such limit (the reference server cannot pass this)' : false;

async function errorBody(r) {
  assert.equal(r.status, 400, `status for ${r.text}`);
  return JSON.parse(r.text);
}

test('unknown transport → 400 {"code":0,"message":"Transport unknown"}', async () => {
  const res = await fetch(`${hub.url}/socket.io/?EIO=4&transport=carrier-pigeon`);
  assert.equal(res.status, 400);
  assert.deepEqual(await res.json(), { code: 0, message: 'Transport unknown' });
});

test('unknown session id → 400 {"code":1,"message":"Session ID unknown"}', async () => {
  for (const method of ['GET', 'POST']) {
    const r = await poll(hub.url, { method, sid: 'no-such-session', body: method === 'POST' ? '40' : undefined });
    assert.deepEqual(await errorBody(r), { code: 1, message: 'Session ID unknown' });
  }
});

test('a session id used on another transport is refused', async () => {
  const { sid } = await open(hub.url);
  const res = await fetch(`${hub.url}/socket.io/?EIO=4&transport=websocket&sid=${sid}`);
  assert.equal(res.status, 400);
  const body = await res.json();
  assert.ok([1, 3].includes(body.code), `code ${body.code}`);
});

test('bad handshake method (POST or PUT without sid) → 400 code 2', async () => {
  for (const method of ['POST', 'PUT']) {
    const r = await poll(hub.url, { method, body: '40' });
    const body = await errorBody(r);
    assert.equal(body.code, 2, `${method}: ${r.text}`);
    assert.equal(typeof body.message, 'string');
  }
});

test('bad request (websocket handshake without upgrade headers) → 400 code 3', async () => {
  const res = await fetch(`${hub.url}/socket.io/?EIO=4&transport=websocket`);
  assert.equal(res.status, 400);
  const body = await res.json();
  assert.equal(body.code, 3);
  assert.equal(typeof body.message, 'string');
});

test('unsupported protocol version (EIO=3) → 400 code 5', async () => {
  const res = await fetch(`${hub.url}/socket.io/?EIO=3&transport=polling`);
  assert.equal(res.status, 400);
  const body = await res.json();
  assert.equal(body.code, 5);
  assert.equal(typeof body.message, 'string');
});

async function sessionGone(sid) {
  // The session must end: a GET either finds it unknown (400, code 1) or returns its close packet
  // (anything still queued, such as a CONNECT reply, may come first).
  for (let i = 0; i < 5; i += 1) {
    const r = await poll(hub.url, { sid });
    if (r.status === 400) return assert.equal(JSON.parse(r.text).code, 1);
    assert.equal(r.status, 200);
    if (r.text.split('\x1e').includes('1')) return undefined;
  }
  return assert.fail(`session ${sid} is still open`);
}

test('an oversized polling body is refused and closes the session', async () => {
  const { sid } = await open(hub.url);
  const big = `4${'x'.repeat(MAX_PAYLOAD + 10)}`;
  const r = await poll(hub.url, { method: 'POST', sid, body: big });
  assert.ok(r.status >= 400, `expected an error status, got ${r.status}`);
  // Node engine.io answers 413 but keeps the session; the hub's contract is to close it.
  if (IMPL === 'hub') await sessionGone(sid);
});

test('malformed polling payloads close the session', async () => {
  for (const body of ['zzz', '4', '42["e"', '40\x1e4', '\x1e\x1e', '9hello']) {
    const { sid } = await open(hub.url);
    await poll(hub.url, { method: 'POST', sid, body: '40' });
    const r = await poll(hub.url, { method: 'POST', sid, body });
    // Either the POST itself fails, or the session is closed afterwards.
    try {
      if (r.status === 200) await sessionGone(sid);
      else assert.equal(r.status, 400, `POST → ${r.status} ${r.text}`);
    } catch (e) {
      e.message = `body ${JSON.stringify(body)} (POST answered ${r.status}): ${e.message}`;
      throw e;
    }
  }
});

/** A raw Engine.IO WebSocket connection, opened and (optionally) connected to "/". */
async function rawWs({ connect = true } = {}) {
  const ws = new WebSocket(`${hub.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
  sockets.push(ws);
  const frames = [];
  let waiter = null;
  ws.on('message', (data, isBinary) => {
    frames.push(isBinary ? data : data.toString());
    if (waiter) waiter();
  });
  const closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  const next = (pred, what) => withTimeout(new Promise((resolve) => {
    const check = () => {
      const i = frames.findIndex(pred);
      if (i >= 0) { waiter = null; resolve(frames.splice(0, i + 1).pop()); }
    };
    waiter = check;
    check();
  }), what);
  await next((f) => typeof f === 'string' && f.startsWith('0'), 'open packet');
  if (connect) {
    ws.send('40');
    await next((f) => typeof f === 'string' && f.startsWith('40'), 'CONNECT reply');
  }
  return { ws, frames, next, closed };
}

async function closesOn(send) {
  const c = await rawWs();
  send(c.ws);
  await withTimeout(c.closed, 'the hub to close the connection');
}

test('malformed Engine.IO packet over websocket → clean close', async () => {
  await closesOn((ws) => ws.send('9nonsense'));
});

test('malformed Socket.IO packets over websocket → clean close', async () => {
  for (const bad of ['42["unterminated', '4Z', '42{"not":"an array"}', '42[]', '4', '41x', '42[null]']) {
    await closesOn((ws) => ws.send(bad)).catch((e) => { throw new Error(`${JSON.stringify(bad)}: ${e.message}`); });
  }
});

test('invalid UTF-8 in a text frame → clean close', async () => {
  await closesOn((ws) => ws.send(Buffer.from([0x34, 0x32, 0x5b, 0x22, 0xc3, 0x28, 0xff, 0x22, 0x5d]), { binary: false }));
});

test('an oversized websocket message → clean close', async () => {
  await closesOn((ws) => ws.send(`42["e","${'y'.repeat(MAX_PAYLOAD + 10)}"]`));
});

test('a binary frame with no binary packet pending → clean close', { skip: hubOnly }, async () => {
  await closesOn((ws) => ws.send(Buffer.from([1, 2, 3])));
});

test('more binary attachments than socketio.max_attachments → clean close', { skip: hubOnly }, async () => {
  const ph = (n) => ({ _placeholder: true, num: n });
  await closesOn((ws) => ws.send(`453-["e",${JSON.stringify([ph(0), ph(1), ph(2)])}]`));
});

test('a slow client that never reads is disconnected; other clients keep working', { skip: hubOnly }, async () => {
  const slow = await rawWs();
  slow.ws.send('420["hub:join","flood"]');
  await slow.next((f) => f === '430[{"ok":true}]', 'join ack');
  slow.ws._socket.pause(); // stop reading: the kernel buffers fill, then the hub's queue

  const fast = await clients.connect(hub.url, { transports: ['websocket'] });
  assert.deepEqual(await call(fast, 'hub:join', 'flood'), { ok: true });
  let fastGone = null;
  fast.on('disconnect', (reason) => { fastGone = reason; });
  const got = collector(fast, 'blob');
  const sender = await clients.connect(hub.url, { transports: ['websocket'] });
  const chunk = 'z'.repeat(MAX_PAYLOAD - 100);
  // 1500 × ~20 KB ≈ 30 MB: far more than loopback socket buffers plus a 256 KiB queue. The sender
  // paces itself on the fast client (batches of 5, ~100 KB), so only the slow one falls behind.
  const N = 1500;
  for (let i = 0; i < N - 1; i += 1) {
    sender.emit('hub:to', 'flood', 'blob', i, chunk);
    if (i % 5 === 4) {
      await got.until(i + 1, 30000).catch((e) => { throw new Error(`${e.message}; fast client disconnected: ${fastGone}`); });
    }
  }
  assert.deepEqual(await call(sender, 'hub:to', 'flood', 'blob', N - 1, 'last'), { ok: true });
  await got.until(N, 60000);
  assert.equal(fastGone, null, 'the fast client stays connected');
  assert.deepEqual(got.got.map((a) => a[0]), Array.from({ length: N }, (_, i) => i), 'the fast client got everything in order');

  // Now read what the slow client was sent: the hub must have closed it before the last message.
  let sawLast = false;
  slow.ws.on('message', (d) => { if (String(d).includes('"last"')) sawLast = true; });
  slow.ws._socket.resume();
  await withTimeout(slow.closed, 'the slow client to be closed', 60000);
  assert.equal(sawLast, false, 'the slow client was not disconnected: it received the whole flood');
});

test('CORS defaults: the request origin is echoed', async () => {
  const res = await fetch(`${hub.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin: 'https://anywhere.example' } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('access-control-allow-origin'), 'https://anywhere.example');
});

test('CORS with allowed_origins and credentials', async () => {
  const h = await startHub({ cors: { allowed_origins: ['https://app.example'], credentials: true } });
  try {
    const pre = await fetch(`${h.url}/socket.io/?EIO=4&transport=polling`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    assert.ok(pre.status === 204 || pre.status === 200, `preflight status ${pre.status}`);
    assert.equal(pre.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.equal(pre.headers.get('access-control-allow-credentials'), 'true');
    assert.match(pre.headers.get('access-control-allow-methods') || '', /POST/);

    const ok = await fetch(`${h.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin: 'https://app.example' } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.equal(ok.headers.get('access-control-allow-credentials'), 'true');

    const evil = await fetch(`${h.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin: 'https://evil.example' } });
    const acao = evil.headers.get('access-control-allow-origin');
    assert.ok(acao !== 'https://evil.example' && acao !== '*', `a disallowed origin must not be allowed (got ${acao})`);
  } finally {
    await h.close();
  }
});

'use strict';
// The SDK against a scripted fake hub (a `ws` server speaking the link protocol): what it sends
// for what socket.io does, in which order, and how it reacts to refusals and link loss.

const { test, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { WebSocketServer } = require('ws');
const { Server } = require('socket.io');
const { useHub, parseConnectionString, signToken, HubUnsupportedError } = require('..');
const { attachmentsOf, nspOf } = require('../lib/engine');

const KEY = 'sdk-test-key-0123456789abcdefghij';
const cleanup = [];
afterEach(async () => { while (cleanup.length) await cleanup.pop()(); });

function verify(token, key) {
  const [h, b, s] = token.split('.');
  const want = crypto.createHmac('sha256', key).update(`${h}.${b}`).digest('base64url');
  assert.equal(s, want, 'signature');
  return JSON.parse(Buffer.from(b, 'base64url').toString());
}

/** A fake hub: records messages (text parsed, binaries as Buffers) of each link. */
async function fakeHub({ status } = {}) {
  const wss = new WebSocketServer({
    port: 0,
    verifyClient: status ? (info, cb) => cb(false, status, 'refused') : undefined,
  });
  await new Promise((r) => wss.once('listening', r));
  const hub = { wss, links: [], messages: [], waiters: [], url: `http://127.0.0.1:${wss.address().port}` };
  wss.on('connection', (ws, req) => {
    hub.links.push({ ws, req });
    ws.on('message', (data, isBinary) => {
      hub.messages.push(isBinary ? Buffer.from(data) : JSON.parse(data.toString()));
      hub.waiters = hub.waiters.filter((w) => (w.check() ? (w.resolve(), false) : true));
    });
    ws.send(JSON.stringify({ t: 'hello', v: 1, instance: hub.links.length, node: 'fake', maxAttachments: 16 }));
  });
  hub.until = (pred, ms = 5000) => new Promise((resolve, reject) => {
    const w = { check: () => pred(hub.messages), resolve };
    if (w.check()) return resolve();
    hub.waiters.push(w);
    setTimeout(() => reject(new Error(`timed out; messages: ${JSON.stringify(hub.messages)}`)), ms).unref();
  });
  hub.send = (msg, i = hub.links.length - 1) => hub.links[i].ws.send(JSON.stringify(msg));
  cleanup.push(() => new Promise((r) => { for (const c of wss.clients) c.terminate(); wss.close(r); }));
  return hub;
}

function app(hub, setup, opts = {}) {
  const io = new Server();
  if (setup) setup(io);
  const h = useHub(io, { connectionString: `Endpoint=${hub.url};AccessKey=${KEY};`, logger: null, ...opts });
  cleanup.push(async () => io.close());
  return { io, h };
}

const SID = 'AAAAsessionid0000001';
const ID = 'AAAAsocketid00000001';
const open = (hub) => {
  hub.send({ t: 'open', sid: SID, transport: 'websocket', handshake: { headers: { 'x-a': '1' }, query: { q: '2' }, address: '10.0.0.1', url: '/socket.io/?q=2' } });
  hub.send({ t: 'connect', sid: SID, nsp: '/', id: ID, auth: { name: 'n' }, claims: { sub: 'u1' }, rooms: [], rebind: false });
};

test('connection strings and tokens', () => {
  assert.deepEqual(parseConnectionString('Endpoint=https://h:1/;AccessKey=k;'), { endpoint: 'https://h:1', accessKey: 'k' });
  assert.deepEqual(parseConnectionString('accesskey=k; endpoint=http://h'), { endpoint: 'http://h', accessKey: 'k' });
  assert.throws(() => parseConnectionString('Endpoint=h;AccessKey=k'), /Endpoint=http/);
  assert.throws(() => parseConnectionString('Endpoint=http://h'), /AccessKey/);
  assert.equal(verify(signToken(KEY, { a: 1 }), KEY).a, 1);
  assert.equal(attachmentsOf('51-["a",{"_placeholder":true,"num":0}]'), 1);
  assert.equal(attachmentsOf('612-/x,3[]'), 12);
  assert.equal(attachmentsOf('2["a"]'), 0);
  assert.equal(nspOf('0/chat,{"sid":"x"}'), '/chat');
  assert.equal(nspOf('51-/bin,["a"]'), '/bin');
  assert.equal(nspOf('2["a"]'), '/');
});

test('the link presents a sio.link token; the socket gets the proposed id, handshake and claims', async () => {
  const hub = await fakeHub();
  let seen;
  const { h } = app(hub, (io) => io.on('connection', (s) => { seen = s; }));
  await h.ready;
  const { req } = hub.links[0];
  assert.match(req.url, /^\/api\/v1\/link\?v=1&name=/);
  const claims = verify(req.headers.authorization.replace('Bearer ', ''), KEY);
  assert.equal(claims['sio.link'], true);
  assert.equal(claims.aud, 'socketio-hub:link', 'the hub refuses link tokens without the link audience');
  assert.ok(claims.exp > Date.now() / 1000);
  open(hub);
  await hub.until((m) => m.some((x) => x.t === 'packet' && x.data.startsWith('0')));
  const reply = hub.messages.find((x) => x.t === 'packet' && x.data.startsWith('0'));
  assert.deepEqual(JSON.parse(reply.data.slice(1)), { sid: ID });
  assert.equal(seen.id, ID);
  assert.deepEqual(seen.handshake.query, { q: '2' });
  assert.equal(seen.handshake.headers['x-a'], '1');
  assert.equal(seen.handshake.address, '10.0.0.1');
  assert.deepEqual(seen.handshake.auth, { name: 'n' });
  assert.deepEqual(seen.handshake.claims, { sub: 'u1' });
});

test('join without await then a room emit: link messages keep call order; binary is grouped', async () => {
  const hub = await fakeHub();
  const { h } = app(hub, (io) => io.on('connection', (s) => {
    s.on('go', () => {
      s.join('r');
      io.to('r').except('x').emit('news', Buffer.from([7]));
      s.leave('r');
    });
  }));
  await h.ready;
  open(hub);
  await hub.until((m) => m.some((x) => x.data && x.data.startsWith('0')));
  hub.send({ t: 'packet', sid: SID, data: '2["go"]' });
  await hub.until((m) => m.some((x) => x.t === 'leave'));
  const ops = hub.messages.filter((x) => x.t === 'join' || x.t === 'broadcast' || x.t === 'leave' || Buffer.isBuffer(x));
  assert.deepEqual(ops[0], { t: 'join', nsp: '/', id: ID, sid: SID, rooms: ['r'] });
  assert.equal(ops[1].t, 'broadcast');
  assert.deepEqual(ops[1].rooms, ['r']);
  assert.deepEqual(ops[1].except, ['x']);
  assert.equal(ops[1].bin, 1);
  assert.equal(ops[1].data, '51-["news",{"_placeholder":true,"num":0}]');
  assert.deepEqual(ops[2], Buffer.from([7]));
  assert.equal(ops[3].t, 'leave');
});

test('a wrong key is fatal at once: no retry', async () => {
  const hub = await fakeHub({ status: 401 });
  const { h } = app(hub);
  await assert.rejects(h.ready, (e) => e.code === 'UNAUTHORIZED' && /HTTP 401/.test(e.message));
  assert.equal(h.link.timer, null);
});

test('a lost link is retried with backoff, and sessions on it end', async () => {
  const hub = await fakeHub();
  let reason;
  const logs = [];
  const logger = { warn: (m) => logs.push(m), info: () => {}, error: (m) => logs.push(m) };
  const { h } = app(hub, (io) => io.on('connection', (s) => s.on('disconnect', (r) => { reason = r; })), { logger });
  h.link.minDelay = 10;
  await h.ready;
  open(hub);
  await hub.until((m) => m.some((x) => x.data && x.data.startsWith('0')));
  const reconnected = new Promise((r) => hub.wss.once('connection', r));
  hub.links[0].ws.terminate();
  await reconnected;
  assert.equal(reason, 'transport close');
  assert.match(logs.join('\n'), /server link to .* down: .*retrying in \d+ ms/);
});

test('unsupported APIs throw, naming them', async () => {
  const hub = await fakeHub();
  assert.throws(() => app(hub, null, {}) && useHub(new Server({ connectionStateRecovery: {} }), {
    connectionString: `Endpoint=${hub.url};AccessKey=${KEY};`, logger: null,
  }), (e) => e instanceof HubUnsupportedError && e.api.includes('connectionStateRecovery'));
  const { io, h } = app(hub);
  await h.ready;
  assert.throws(() => io.local.emit('x'), (e) => e instanceof HubUnsupportedError);
  assert.throws(() => io.engine.on('initial_headers', () => {}), HubUnsupportedError);
});

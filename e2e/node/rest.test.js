'use strict';
// The REST API for servers (/api/v1, bearer JWT signed with an access key), as docs/openapi.yaml
// specifies it. The reference server implements the same contract.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startHub, ACCESS_KEY } = require('../harness/hub');
const { Clients, call, once, collector, connectError, signJwt } = require('../harness/client');
const { rest: restCall } = require('../app/app');

let hub;
const clients = new Clients();
before(async () => {
  hub = await startHub({
    socketio: { namespaces: ['/', '/other'] },
    permissions: [{ namespace: '*', join: ['*'], emit: ['*'] }],
  });
});
after(async () => { if (hub) await hub.close(); });
afterEach(() => clients.closeAll());

const rest = (method, path, body, opts = {}) => restCall(hub, method, path, body, { key: ACCESS_KEY, ...opts });
const joined = async (room, opts) => {
  const s = await clients.connect(hub.url, opts);
  if (room) assert.deepEqual(await call(s, 'hub:join', room), { ok: true });
  return s;
};

test('missing, forged, expired or exp-less bearer tokens → 401 {"error": …}', async () => {
  const cases = {
    missing: null,
    garbage: 'not-a-jwt',
    forged: signJwt({ sub: 'x' }, 'some-other-key-some-other-key-some-other'),
    expired: signJwt({ sub: 'x', exp: Math.floor(Date.now() / 1000) - 10 }, ACCESS_KEY),
    'no exp': signJwt({ sub: 'x' }, ACCESS_KEY, { expiresIn: null }),
  };
  for (const [what, token] of Object.entries(cases)) {
    const r = await rest('POST', '/emit', { event: 'e', args: [] }, { token: token || '' });
    assert.equal(r.status, 401, `${what}: ${JSON.stringify(r.body)}`);
    assert.equal(typeof r.body.error, 'string', `${what}: body ${JSON.stringify(r.body)}`);
  }
});

test('a non-JSON body → 400 with a message', async () => {
  const r = await rest('POST', '/emit', undefined, { raw: '{"event": oops' });
  assert.equal(r.status, 400);
  assert.equal(typeof r.body.error, 'string');
});

test('emit to a room → 202, delivered with its arguments', async () => {
  const s = await joined('news');
  const got = once(s, 'headline');
  const r = await rest('POST', '/emit', { namespace: '/', rooms: ['news'], event: 'headline', args: ['big', { n: 1 }] });
  assert.equal(r.status, 202);
  assert.deepEqual(r.body, { delivered: 1 });
  assert.deepEqual(await got, ['big', { n: 1 }]);
});

test('emit with exceptRooms, to sockets, and to a whole namespace', async () => {
  const a = await joined('all');
  const b = await joined('all');
  assert.deepEqual(await call(b, 'hub:join', 'muted'), { ok: true });
  const other = await clients.connect(`${hub.url}/other`);
  const ga = collector(a, 'm');
  const gb = collector(b, 'm');
  const go = collector(other, 'm');
  assert.equal((await rest('POST', '/emit', { namespace: '/', rooms: ['all'], exceptRooms: ['muted'], event: 'm', args: ['except'] })).status, 202);
  assert.equal((await rest('POST', '/emit', { namespace: '/', sockets: [b.id], event: 'm', args: ['to-b'] })).status, 202);
  assert.equal((await rest('POST', '/emit', { namespace: '/', event: 'm', args: ['everyone'] })).status, 202);
  await ga.until(2);
  await gb.until(2);
  assert.deepEqual(ga.got, [['except'], ['everyone']]);
  assert.deepEqual(gb.got, [['to-b'], ['everyone']]);
  assert.equal((await rest('POST', '/emit', { namespace: '/other', event: 'm', args: ['other-ns'] })).status, 202);
  await go.until(1);
  assert.deepEqual(go.got, [['other-ns']], 'a namespace-wide emit stays in its namespace');
});

test('emit binary args ({"_binary": base64}) arrive as bytes', async () => {
  const s = await joined('bin', { transports: ['websocket'] });
  const got = once(s, 'file');
  const r = await rest('POST', '/emit', { rooms: ['bin'], event: 'file', args: [{ name: 'a', data: { _binary: Buffer.from('hello').toString('base64') } }] });
  assert.equal(r.status, 202);
  const [f] = await got;
  assert.equal(f.name, 'a');
  assert.ok(Buffer.from(f.data).equals(Buffer.from('hello')));
});

test('volatile emit reaches a connected client', async () => {
  const s = await joined('vol-rest', { transports: ['websocket'] });
  const got = once(s, 'v');
  assert.equal((await rest('POST', '/emit', { rooms: ['vol-rest'], event: 'v', args: [1], volatile: true })).status, 202);
  assert.deepEqual(await got, [1]);
});

test('emit with ack collects responses and time-outs per socket', async () => {
  const answers = await joined('ackers');
  const silent = await joined('ackers');
  answers.on('q', (n, ack) => ack('got', n));
  silent.on('q', () => { /* never acks */ });
  const r = await rest('POST', '/emit', { rooms: ['ackers'], event: 'q', args: [5], ack: { timeoutMs: 1000 } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.body.responses, [{ sid: answers.id, args: ['got', 5] }]);
  assert.deepEqual(r.body.timedOut, [silent.id]);
});

test('sockets/join and sockets/leave by room and by socket id', async () => {
  const a = await joined('src');
  const b = await joined(null);
  const peer = await joined(null);
  let r = await rest('POST', '/sockets/join', { namespace: '/', rooms: ['src'], join: ['dst'] });
  assert.deepEqual([r.status, r.body], [200, { matched: 1 }]);
  r = await rest('POST', '/sockets/join', { namespace: '/', sockets: [b.id], join: ['dst'] });
  assert.deepEqual([r.status, r.body], [200, { matched: 1 }]);
  const ga = collector(a, 'x');
  const gb = collector(b, 'x');
  assert.deepEqual(await call(peer, 'hub:to', 'dst', 'x', 1), { ok: true });
  await Promise.all([ga.until(1), gb.until(1)]);
  r = await rest('POST', '/sockets/leave', { namespace: '/', sockets: [a.id], leave: ['dst'] });
  assert.deepEqual([r.status, r.body], [200, { matched: 1 }]);
  assert.deepEqual(await call(peer, 'hub:to', 'dst', 'x', 2), { ok: true });
  await gb.until(2);
  assert.deepEqual(await call(peer, 'hub:to', 'src', 'x', 'barrier'), { ok: true });
  await ga.until(2);
  assert.deepEqual(ga.got, [[1], ['barrier']]);
});

test('sockets/disconnect disconnects the matching sockets', async () => {
  const a = await joined('kick');
  const b = await joined(null);
  const gone = once(a, 'disconnect');
  const r = await rest('POST', '/sockets/disconnect', { namespace: '/', rooms: ['kick'], close: false });
  assert.deepEqual([r.status, r.body], [200, { matched: 1 }]);
  assert.equal((await gone)[0], 'io server disconnect');
  assert.ok(b.connected, 'others stay connected');
});

test('sockets/fetch returns ids, rooms and handshakes', async () => {
  const a = await joined('fetch-me', { query: { who: 'a' } });
  const r = await rest('POST', '/sockets/fetch', { namespace: '/', rooms: ['fetch-me'] });
  assert.equal(r.status, 200);
  assert.equal(r.body.sockets.length, 1);
  const [s] = r.body.sockets;
  assert.equal(s.id, a.id);
  assert.equal(s.namespace, '/');
  assert.deepEqual(s.rooms, [a.id, 'fetch-me'], 'own id first, then joined rooms');
  assert.equal(s.recovered, false);
  assert.equal(s.handshake.query.who, 'a');
  assert.equal(typeof s.handshake.headers, 'object');
  assert.equal(typeof s.handshake.address, 'string');
  assert.equal(typeof s.handshake.issued, 'number');
  assert.equal(s.handshake.claims, null);
});

test('GET rooms lists rooms with sizes', async () => {
  await joined('counted');
  await joined('counted');
  const r = await rest('GET', '/rooms?namespace=/');
  assert.equal(r.status, 200);
  const room = r.body.rooms.find((x) => x.name === 'counted');
  assert.deepEqual(room, { name: 'counted', size: 2 });
});

test('POST tokens mints a client token that passes client_auth = "required"', async () => {
  const r = await rest('POST', '/tokens', { userId: 'u-1', expiresInSeconds: 600 });
  assert.equal(r.status, 200);
  assert.equal(typeof r.body.token, 'string');
  const now = Date.now() / 1000;
  assert.ok(Math.abs(r.body.expiresAt - (now + 600)) < 30, `expiresAt ${r.body.expiresAt}`);
  const claims = JSON.parse(Buffer.from(r.body.token.split('.')[1], 'base64url'));
  assert.equal(claims.sub, 'u-1');
  assert.equal(claims.aud, 'socketio-hub:client');
  assert.equal(claims.exp, r.body.expiresAt);
  const refused = await rest('GET', '/rooms', undefined, { token: r.body.token });
  assert.equal(refused.status, 401, 'a client token cannot call the REST API');
  const strict = await startHub({ auth: { client_auth: 'required' } });
  try {
    const s = await clients.connect(strict.url, { auth: { token: r.body.token } });
    assert.ok(s.connected);
    await connectError(clients.socket(strict.url, { auth: { token: `${r.body.token}x` } }));
  } finally {
    clients.closeAll();
    await strict.close();
  }
});


test('a minted token\'s grants let the client use hub:join / hub:to without config permissions', async () => {
  const strict = await startHub({ auth: { client_auth: 'required' }, socketio: { namespaces: ['/', '/chat'] } });
  try {
    const r = await restCall(strict, 'POST', '/tokens', { userId: 'alice', namespaces: ['/chat'], join: ['room-*'], emit: ['room-*'], claims: { role: 'mod' } }, { key: ACCESS_KEY });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const claims = JSON.parse(Buffer.from(r.body.token.split('.')[1], 'base64url'));
    assert.equal(claims.role, 'mod');
    const a = await clients.connect(`${strict.url}/chat`, { auth: { token: r.body.token } });
    const b = await clients.connect(`${strict.url}/chat`, { auth: { token: r.body.token } });
    assert.deepEqual(await call(a, 'hub:join', 'room-1'), { ok: true });
    assert.equal((await call(a, 'hub:join', 'other')).ok, false);
    const got = once(a, 'hello');
    assert.deepEqual(await call(b, 'hub:to', 'room-1', 'hello', 'alice'), { ok: true });
    assert.deepEqual(await got, ['alice']);
    const err = await connectError(clients.socket(strict.url, { auth: { token: r.body.token } }));
    assert.notEqual(err.type, 'TransportError', 'a namespace outside sio.ns is a CONNECT_ERROR');
  } finally {
    clients.closeAll();
    await strict.close();
  }
});

test('GET namespaces lists namespaces with socket counts', async () => {
  await clients.connect(`${hub.url}/other`);
  const r = await rest('GET', '/namespaces');
  assert.equal(r.status, 200);
  const other = r.body.namespaces.find((n) => n.name === '/other');
  assert.deepEqual(other, { name: '/other', sockets: 1 });
});

test('unknown fields, reserved event names and unknown namespaces are refused', async () => {
  let r = await rest('POST', '/emit', { event: 'e', exceptRoom: ['typo'] });
  assert.equal(r.status, 400);
  assert.match(r.body.error, /exceptRoom/);
  r = await rest('POST', '/emit', { event: 'hub:to', args: [] });
  assert.equal(r.status, 400);
  assert.equal(typeof r.body.error, 'string');
  r = await rest('POST', '/emit', { event: 'e', namespace: '/not-served' });
  assert.equal(r.status, 404);
  assert.equal(typeof r.body.error, 'string');
  r = await rest('POST', '/emit', undefined, { raw: '[1,2]' });
  assert.equal(r.status, 400);
  r = await rest('GET', '/emit');
  assert.equal(r.status, 405);
});

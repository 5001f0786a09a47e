'use strict';
// The Socket.IO Admin UI's server protocol, served by a 3-node cluster itself (development
// mode), driven with plain socket.io-client as the UI would: login and `session` resume on
// another node, `config`, `server_stats` from every node, `all_sockets` and live events across
// nodes, and the commands `emit`, `join`, `leave`, `_disconnect` acting on the whole cluster.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const bcrypt = require('bcryptjs');
const { Clients, once, connectError, call, collector } = require('../harness/client');
const h = require('./harness');

const PASSWORD = 'correct horse battery staple';
const ADMIN = {
  enabled: true,
  username: 'admin',
  password_hash: bcrypt.hashSync(PASSWORD, 4),
  mode: 'development',
};

let cluster;
const clients = new Clients();
before(async () => { cluster = await h.startCluster(3, { admin_ui: ADMIN }); });
after(async () => { if (cluster) await h.stopCluster(cluster); });
afterEach(() => clients.closeAll());

const node = (i) => cluster.nodes[i];
const ws = { transports: ['websocket'] };

/** An admin socket on node `i` with the UI's listeners; resolves once connected. */
async function admin(i, auth = { username: 'admin', password: PASSWORD }) {
  const s = clients.socket(`${node(i).url}/admin`, { ...ws, auth });
  const seen = { session: null, config: null, stats: new Map(), allSockets: null, events: [] };
  s.on('session', (id) => { seen.session = id; });
  s.on('config', (c) => { seen.config = c; });
  s.on('server_stats', (st) => { seen.stats.set(st.serverId, st); });
  s.on('all_sockets', (list) => { seen.allSockets = list; });
  for (const ev of ['socket_connected', 'socket_disconnected', 'room_joined', 'room_left', 'event_received']) {
    s.on(ev, (...args) => seen.events.push([ev, ...args]));
  }
  await once(s, 'connect');
  return { s, seen };
}

/** A plain client of namespace `/` on node `i` that joins `rooms` (client permissions). */
async function member(i, ...rooms) {
  const s = await clients.connect(node(i).url, ws);
  for (const r of rooms) assert.deepEqual(await call(s, 'hub:join', r), { ok: true });
  return s;
}

test('login: wrong or missing credentials are refused, a session id resumes on another node', async () => {
  for (const auth of [{ username: 'admin', password: 'nope' }, { username: 'root', password: PASSWORD }, {}]) {
    const s = clients.socket(`${node(0).url}/admin`, { ...ws, auth });
    const err = await connectError(s);
    assert.equal(err.message, 'invalid credentials');
  }
  const first = await admin(0);
  await h.until(() => first.seen.session && first.seen.config, 'session and config');
  assert.match(first.seen.session, /^\d+\.[0-9a-f]{24}\.[0-9a-f]{64}$/);
  assert.deepEqual(first.seen.config.supportedFeatures,
    ['EMIT', 'JOIN', 'LEAVE', 'DISCONNECT', 'MJOIN', 'MLEAVE', 'MDISCONNECT', 'AGGREGATED_EVENTS', 'ALL_EVENTS']);
  // The UI reconnects with only the session id; any node accepts it and issues no new one.
  const resumed = await admin(2, { sessionId: first.seen.session });
  await h.until(() => resumed.seen.config, 'config after resume');
  assert.equal(resumed.seen.session, null);
  const forged = clients.socket(`${node(1).url}/admin`, { ...ws, auth: { sessionId: `${first.seen.session.slice(0, -1)}0` } });
  assert.equal((await connectError(forged)).message, 'invalid credentials');
});

test('server_stats arrive from all three nodes, with their own names and socket counts', async () => {
  await member(0); await member(1); await member(1); await member(2); await member(2); await member(2);
  const { seen } = await admin(1);
  const stats = await h.until(() => {
    if (seen.stats.size < 3) return false;
    const counts = ['n1', 'n2', 'n3'].map((n) => {
      const st = seen.stats.get(n);
      return st && (st.namespaces.find((x) => x.name === '/') || {}).socketsCount;
    });
    return counts.join() === '1,2,3' && seen.stats;
  }, 'stats of n1, n2, n3 with 1, 2, 3 sockets in /', 15000);
  assert.deepEqual([...stats.keys()].sort(), ['n1', 'n2', 'n3']);
  for (const [id, st] of stats) {
    assert.equal(typeof st.hostname, 'string', id);
    assert.ok(st.pid > 0 && st.uptime > 0, id);
    assert.ok(st.clientsCount >= 1, id);
    assert.equal(typeof st.pollingClientsCount, 'number', id);
    assert.ok(Array.isArray(st.aggregatedEvents), id);
  }
  // The admin socket itself shows in the /admin namespace of the node it is on.
  assert.equal(stats.get('n2').namespaces.find((x) => x.name === '/admin').socketsCount, 1);
  // Aggregated events: each node counts its own connections and bytes.
  const agg = new Map();
  const { s } = await admin(0);
  s.on('server_stats', (st) => {
    for (const e of st.aggregatedEvents) agg.set(`${st.serverId}:${e.type}`, (agg.get(`${st.serverId}:${e.type}`) || 0) + e.count);
  });
  await member(2);
  await h.until(() => agg.get('n3:rawConnection') >= 1 && agg.get('n3:bytesIn') > 0 && agg.get('n3:packetsOut') > 0,
    'aggregated rawConnection, bytesIn and packetsOut from n3', 15000);
});

test('all_sockets lists the sockets and rooms of every node; live events come from every node', async () => {
  const a = await member(0, 'red');
  const b = await member(2, 'red', 'blue');
  // The socket list covers the namespaces the nodes gossip; wait until gossip has them.
  await h.waitRoom(cluster, 'red', [0, 2]);
  const { seen } = await admin(1);
  const list = await h.until(() => seen.allSockets, 'all_sockets');
  const byId = new Map(list.map((x) => [x.id, x]));
  assert.ok(byId.has(a.id) && byId.has(b.id), 'sockets of n1 and n3 listed by an admin on n2');
  assert.deepEqual(byId.get(b.id).rooms.sort(), [b.id, 'blue', 'red'].sort());
  assert.equal(byId.get(b.id).nsp, '/');
  assert.equal(typeof byId.get(b.id).clientId, 'string');
  assert.ok(byId.get(b.id).handshake.headers, 'handshake headers');
  assert.equal(byId.get(b.id).handshake.auth, undefined, 'no auth payload exposed');

  const c = await member(2, 'green');
  c.emit('hello', 'world', 42);
  await h.until(() => seen.events.some((e) => e[0] === 'socket_connected' && e[1].id === c.id)
    && seen.events.some((e) => e[0] === 'room_joined' && e[2] === 'green' && e[3] === c.id)
    && seen.events.some((e) => e[0] === 'event_received' && e[2] === c.id && e[3][0] === 'hello' && e[3][2] === 42),
  'socket_connected, room_joined and event_received for a socket of n3');
  const connectedEvent = seen.events.find((e) => e[0] === 'socket_connected' && e[1].id === c.id);
  assert.equal(connectedEvent[1].transport, 'websocket');
  const cid = c.id; // socket.io-client forgets it on disconnect
  c.disconnect();
  await h.until(() => seen.events.some((e) => e[0] === 'socket_disconnected' && e[2] === cid
    && e[3] === 'client namespace disconnect'), 'socket_disconnected');
  assert.ok(seen.events.some((e) => e[0] === 'room_left' && e[2] === 'green' && e[3] === cid), 'room_left');
});

test('the commands act on the whole cluster: emit, join, leave, _disconnect', async () => {
  const x = await member(0, 'team');
  const y = await member(1);
  const z = await member(2, 'team');
  const { s } = await admin(1);
  await h.waitRoom(cluster, 'team', [0, 2]);

  // emit to a room (members on n1 and n3), and to one socket id.
  const gotX = collector(x, 'notice');
  const gotY = collector(y, 'notice');
  const gotZ = collector(z, 'notice');
  s.emit('emit', '/', 'team', 'notice', { from: 'admin' }, 1);
  assert.deepEqual(await gotX.until(1), [[{ from: 'admin' }, 1]]);
  assert.deepEqual(await gotZ.until(1), [[{ from: 'admin' }, 1]]);
  s.emit('emit', '/', y.id, 'notice', 'only y');
  assert.deepEqual(await gotY.until(1), [['only y']]);
  assert.equal(gotX.got.length, 1);

  // join: every socket in 'team' joins 'vip'; then a broadcast to 'vip' reaches both.
  s.emit('join', '/', 'vip', 'team');
  await h.waitRoom(cluster, 'vip', [0, 2]);
  const vipX = collector(x, 'vip');
  const vipZ = collector(z, 'vip');
  const vipY = collector(y, 'vip');
  s.emit('emit', '/', 'vip', 'vip', 1);
  await vipX.until(1); await vipZ.until(1);
  // leave: z (on n3) leaves 'vip'; the next emit reaches x only.
  s.emit('leave', '/', 'vip', z.id);
  await h.waitRoomGone(cluster, 'vip', 2);
  s.emit('emit', '/', 'vip', 'vip', 2);
  assert.deepEqual((await vipX.until(2)).map((a) => a[0]), [1, 2]);
  // y is in neither room, and a fence to everyone proves nothing else is in flight.
  const fenceZ = collector(z, 'fence');
  s.emit('emit', '/', null, 'fence');
  await fenceZ.until(1).catch((e) => {
    throw new Error(`${e.message} (z connected: ${z.connected}, admin connected: ${s.connected})`);
  });
  assert.deepEqual(vipZ.got.map((a) => a[0]), [1]);
  assert.equal(vipY.got.length, 0);

  // _disconnect of a socket on another node than the admin's.
  const gone = once(z, 'disconnect');
  s.emit('_disconnect', '/', false, z.id);
  assert.equal((await gone)[0], 'io server disconnect');
  assert.ok(x.connected && y.connected);
  // _disconnect with close of every socket of a room.
  const goneX = once(x, 'disconnect');
  s.emit('_disconnect', '/', true, 'team');
  assert.ok(['io server disconnect', 'transport close'].includes((await goneX)[0]));
  assert.ok(y.connected, 'y was not in team');
});

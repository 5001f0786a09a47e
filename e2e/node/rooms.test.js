'use strict';
// Namespaces, rooms and client permissions through the reserved events hub:join / hub:leave / hub:to.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { Manager } = require('socket.io-client');
const { startHub } = require('../harness/hub');
const { Clients, call, collector, connected, connectError, once } = require('../harness/client');

const config = {
  socketio: { namespaces: ['/', '/chat', '/org-*'] },
  permissions: [
    { namespace: '/', join: ['*'], emit: ['*'] },
    { namespace: '/chat', join: ['public-*'], emit: ['public-*', 'announce'] },
    { namespace: '/org-*', join: ['*'], emit: ['*'] },
  ],
};
let hub;
const clients = new Clients();
const managers = [];
before(async () => { hub = await startHub(config); });
after(async () => { if (hub) await hub.close(); });
afterEach(() => {
  clients.closeAll();
  for (const m of managers.splice(0)) m.engine && m.engine.close();
});

const join = async (s, room) => assert.deepEqual(await call(s, 'hub:join', room), { ok: true });
const to = async (s, rooms, ...args) => assert.deepEqual(await call(s, 'hub:to', rooms, ...args), { ok: true });

test('namespaces are multiplexed on one connection and isolated from each other', async () => {
  const m = new Manager(hub.url, { reconnection: false, transports: ['websocket'] });
  managers.push(m);
  const root = m.socket('/');
  const chat = m.socket('/chat');
  await Promise.all([connected(root), connected(chat)]);
  assert.equal(root.io, chat.io, 'both sockets share one Manager');
  assert.equal(m.engine.id !== undefined, true);
  assert.notEqual(root.id, chat.id, 'each namespace has its own socket id');

  await join(root, 'public-x');
  await join(chat, 'public-x');
  const rootMsgs = collector(root, 'msg');
  const chatMsgs = collector(chat, 'msg');
  const other = await clients.connect(`${hub.url}/chat`);
  await to(other, 'public-x', 'msg', 'to-chat');
  await chatMsgs.until(1);
  // Barrier: a message to the same room name in "/" arrives after anything sent before it.
  const otherRoot = await clients.connect(hub.url);
  await to(otherRoot, 'public-x', 'msg', 'to-root');
  await rootMsgs.until(1);
  assert.deepEqual(rootMsgs.got, [['to-root']]);
  assert.deepEqual(chatMsgs.got, [['to-chat']]);
});

test('a namespace outside socketio.namespaces gets CONNECT_ERROR, others on the connection still work', async () => {
  const m = new Manager(hub.url, { reconnection: false });
  managers.push(m);
  const bad = m.socket('/forbidden');
  const good = m.socket('/org-7');
  const err = await connectError(bad);
  assert.notEqual(err.type, 'TransportError', `expected a CONNECT_ERROR, got a transport error: ${err.message}`);
  assert.ok(err.message && err.message.length > 0);
  await connected(good);
  await join(good, 'r');
  assert.equal(bad.connected, false);
});

test('hub:to reaches every room member once, never the sender', async () => {
  const a = await clients.connect(hub.url);
  const b = await clients.connect(hub.url);
  const sender = await clients.connect(hub.url);
  const barrier = await clients.connect(hub.url);
  await join(a, 'r1');
  await join(a, 'r2');
  await join(b, 'r1');
  await join(sender, 'r1');
  await join(sender, 'r2');
  const got = { a: collector(a, 'msg'), b: collector(b, 'msg'), sender: collector(sender, 'msg') };
  await to(sender, ['r1', 'r2'], 'msg', 'once');
  // The barrier client sends an end marker to r1: packets keep their order per socket, so when
  // the marker arrives every copy of "once" that was going to arrive has arrived.
  await to(barrier, 'r1', 'msg', 'end');
  await Promise.all([got.a.until(2), got.b.until(2), got.sender.until(1)]);
  assert.deepEqual(got.a.got, [['once'], ['end']], 'a is in both rooms and gets the message once');
  assert.deepEqual(got.b.got, [['once'], ['end']]);
  assert.deepEqual(got.sender.got, [['end']], 'the sender is excluded');
});

test('hub:to a single room string and many arguments', async () => {
  const a = await clients.connect(hub.url);
  const sender = await clients.connect(hub.url);
  await join(a, 'args');
  const got = once(a, 'multi');
  await to(sender, 'args', 'multi', 1, 'two', { three: [3] }, null, true);
  assert.deepEqual(await got, [1, 'two', { three: [3] }, null, true]);
});

test('a room name in two namespaces is two rooms', async () => {
  const rootMember = await clients.connect(hub.url);
  const orgMember = await clients.connect(`${hub.url}/org-1`);
  const orgSender = await clients.connect(`${hub.url}/org-1`);
  const rootSender = await clients.connect(hub.url);
  await join(rootMember, 'lobby');
  await join(orgMember, 'lobby');
  const rootGot = collector(rootMember, 'msg');
  const orgGot = collector(orgMember, 'msg');
  await to(orgSender, 'lobby', 'msg', 'org');
  await to(rootSender, 'lobby', 'msg', 'root');
  await Promise.all([rootGot.until(1), orgGot.until(1)]);
  // Barrier for the org member too: after "org-end" nothing from "/" can still be in flight to it.
  await to(orgSender, 'lobby', 'msg', 'org-end');
  await orgGot.until(2);
  assert.deepEqual(rootGot.got, [['root']]);
  assert.deepEqual(orgGot.got, [['org'], ['org-end']]);
});

test('hub:leave stops delivery', async () => {
  const a = await clients.connect(hub.url);
  const sender = await clients.connect(hub.url);
  await join(a, 'leave-me');
  await join(a, 'stay');
  const got = collector(a, 'msg');
  await to(sender, 'leave-me', 'msg', 'before');
  await got.until(1);
  assert.deepEqual(await call(a, 'hub:leave', 'leave-me'), { ok: true });
  await to(sender, 'leave-me', 'msg', 'after-leave');
  await to(sender, 'stay', 'msg', 'barrier');
  await got.until(2);
  assert.deepEqual(got.got, [['before'], ['barrier']]);
});

test('joining a room that is not granted is refused and joins nothing', async () => {
  const a = await clients.connect(`${hub.url}/chat`);
  const sender = await clients.connect(`${hub.url}/chat`);
  const res = await call(a, 'hub:join', 'announce');
  assert.equal(res.ok, false);
  assert.equal(typeof res.error, 'string');
  assert.ok(res.error.length > 0);
  await join(a, 'public-ok');
  const got = collector(a, 'msg');
  await to(sender, 'announce', 'msg', 'should-not-arrive');
  await to(sender, 'public-ok', 'msg', 'barrier');
  await got.until(1);
  assert.deepEqual(got.got, [['barrier']], 'a must not be in "announce"');
});

test('hub:to a room that is not granted is refused and delivers nothing', async () => {
  const a = await clients.connect(`${hub.url}/chat`);
  const sender = await clients.connect(`${hub.url}/chat`);
  await join(a, 'public-z');
  const got = collector(a, 'msg');
  const res = await call(sender, 'hub:to', ['public-z', 'secret'], 'msg', 'denied');
  assert.equal(res.ok, false);
  assert.equal(typeof res.error, 'string');
  await to(sender, 'public-z', 'msg', 'barrier');
  await got.until(1);
  assert.deepEqual(got.got, [['barrier']]);
});

test('without any grant for the namespace, hub:join is refused', async () => {
  // "/org-*" is granted, but a namespace with no grant at all (here: none exists) must refuse.
  const hub2 = await startHub({ permissions: [{ namespace: '/other', join: ['*'] }] });
  try {
    const a = await clients.connect(hub2.url);
    const res = await call(a, 'hub:join', 'anything');
    assert.equal(res.ok, false);
    const res2 = await call(a, 'hub:to', 'anything', 'ev', 1);
    assert.equal(res2.ok, false);
  } finally {
    clients.closeAll();
    await hub2.close();
  }
});

test('leaving one namespace keeps the connection and the other namespaces', async () => {
  const m = new Manager(hub.url, { reconnection: false });
  managers.push(m);
  const root = m.socket('/');
  const chat = m.socket('/chat');
  await Promise.all([connected(root), connected(chat)]);
  await join(root, 'ns-leave');
  await join(chat, 'public-ns-leave');
  const engineId = m.engine.id;
  const chatGot = collector(chat, 'msg');
  chat.disconnect(); // a Socket.IO DISCONNECT for "/chat" only
  const rootGot = once(root, 'msg');
  const peer = await clients.connect(hub.url);
  await to(peer, 'ns-leave', 'msg', 'root-still-here');
  assert.deepEqual(await rootGot, ['root-still-here']);
  assert.equal(m.engine.id, engineId, 'the same Engine.IO session');
  const chatPeer = await clients.connect(`${hub.url}/chat`);
  assert.deepEqual(await call(chatPeer, 'hub:to', 'public-ns-leave', 'msg', 'gone'), { ok: true });
  // Barrier on the root socket (same connection): anything for "/chat" would have come first.
  const barrier = once(root, 'msg');
  await to(peer, 'ns-leave', 'msg', 'barrier');
  await barrier;
  assert.deepEqual(chatGot.got, []);
  // Joining the namespace again on the same connection works.
  chat.connect();
  await connected(chat);
  await join(chat, 'public-again');
});

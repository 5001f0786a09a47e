'use strict';
// The client test suite of the acceptance test: what a client of `app.js` can observe. It runs
// unchanged against the app serving its clients itself (plain.test.js) and against the same app
// behind the hub (hub.test.js); both must pass.

const { test, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const path = require('node:path');
const os = require('node:os');
const fs = require('node:fs');
const { Clients, once, connectError, call, collector } = require('../harness/client');

/** The Python of the e2e venv (python-socketio), if installed. */
function python() {
  const venv = process.env.E2E_VENV || path.join(os.homedir(), '.cache', 'socketio-hub', 'e2e-venv');
  const bin = path.join(venv, 'bin', 'python');
  return fs.existsSync(bin) ? bin : null;
}

/** `target()` gives the URL clients connect to (resolved after the setup's before() ran). */
function defineClientSuite(target) {
  let clients;
  beforeEach(() => { clients = new Clients(); });
  afterEach(() => clients.closeAll());
  const url = (nsp = '') => `${target()}${nsp}`;
  const connect = async (opts = {}, nsp = '') => {
    const s = clients.socket(url(nsp), opts);
    const welcome = nsp === '' ? once(s, 'welcome') : null;
    await new Promise((resolve, reject) => { s.once('connect', resolve); s.once('connect_error', reject); });
    return { s, welcome: welcome && (await welcome)[0] };
  };

  test('connection: welcome with the socket id, handshake query and auth', async () => {
    const { s, welcome } = await connect({ auth: { name: 'ann' }, query: { tag: 't1' } });
    assert.equal(welcome.id, s.id);
    assert.equal(welcome.query, 't1');
    assert.deepEqual(welcome.auth, { name: 'ann' });
    assert.deepEqual(welcome.rooms, [s.id]);
  });

  test('connection over long-polling only', async () => {
    const { s, welcome } = await connect({ transports: ['polling'], auth: { name: 'poll' } });
    assert.equal(welcome.id, s.id);
    assert.deepEqual(await call(s, 'echo', 'p', 1), 'p');
  });

  test('a rejecting middleware: connect_error with its message and data', async () => {
    const err = await connectError(clients.socket(url(), { auth: { token: 'bad' } }));
    assert.equal(err.message, 'unauthorized');
    assert.deepEqual(err.data, { code: 'BAD_TOKEN' });
  });

  test('namespace middleware: refused, then accepted', async () => {
    const err = await connectError(clients.socket(url('/admin'), { auth: { role: 'guest' } }));
    assert.equal(err.message, 'admins only');
    assert.deepEqual(err.data, { need: 'admin' });
    const s = clients.socket(url('/admin'), { auth: { role: 'admin' } });
    const [nsp] = await once(s, 'hello-admin');
    assert.equal(nsp, '/admin');
  });

  test('dynamic namespace; an unknown namespace is refused', async () => {
    const s = clients.socket(url('/dyn-abc'));
    const [name] = await once(s, 'dyn');
    assert.equal(name, '/dyn-abc');
    assert.equal(await call(s, 'echo', 'x'), 'x');
    const err = await connectError(clients.socket(url('/nope')));
    assert.equal(err.message, 'Invalid namespace');
  });

  test('acks from client to server, several arguments', async () => {
    const { s } = await connect();
    const got = await new Promise((resolve) => s.emit('echo', 1, { a: [2] }, 'three', (...args) => resolve(args)));
    assert.deepEqual(got, [1, { a: [2] }, 'three']);
  });

  test('acks from server to client: emitWithAck answered, and timed out', async () => {
    const { s } = await connect();
    s.on('question', (q, cb) => cb(`re: ${q}`));
    assert.deepEqual(await call(s, 'ask-client'), { answer: 're: what?' });
    s.on('ignored-question', () => { /* never answers */ });
    assert.deepEqual(await call(s, 'ask-client-timeout'), { error: 'operation has timed out' });
  });

  test('join without await, then an emit to the room reaches the joiner', async () => {
    const { s } = await connect();
    const joined = once(s, 'joined');
    const rooms = await call(s, 'join', 'r-order');
    assert.deepEqual(rooms, [s.id, 'r-order'].sort());
    const [id, room] = await joined;
    assert.equal(id, s.id);
    assert.equal(room, 'r-order');
  });

  test('rooms: socket.to(room) skips the sender; except(room); leave', async () => {
    const a = (await connect()).s;
    const b = (await connect()).s;
    const c = (await connect()).s;
    await call(a, 'join', 'chat');
    await call(b, 'join', 'chat');
    await call(c, 'join', 'chat');
    await call(c, 'join', 'muted');
    const gotA = collector(a, 'room-msg');
    const gotB = collector(b, 'room-msg');
    const gotC = collector(c, 'room-msg');
    a.emit('to-room', 'chat', 'm1');
    await gotB.until(1);
    await gotC.until(1);
    a.emit('to-room-except', 'chat', 'muted', 'm2');
    await gotB.until(2);
    await gotA.until(1);
    // Barrier: b leaves, then a broadcast to the room reaches a and c only.
    assert.deepEqual(await call(b, 'leave', 'chat'), [b.id]);
    c.emit('to-room', 'chat', 'm3');
    await gotA.until(2);
    assert.deepEqual(gotA.got.map((x) => x[0]), ['m2', 'm3']);
    assert.deepEqual(gotB.got.map((x) => x[0]), ['m1', 'm2']);
    assert.deepEqual(gotC.got.map((x) => x[0]), ['m1']);
  });

  test('broadcast with acks: io.to(room).timeout().emitWithAck collects every answer', async () => {
    const a = (await connect()).s;
    const b = (await connect()).s;
    await call(a, 'join', 'poll-room');
    await call(b, 'join', 'poll-room');
    a.on('poll', (room, cb) => cb(`a:${room}`));
    b.on('poll', (room, cb) => cb(`b:${room}`));
    assert.deepEqual(await call(a, 'poll-room', 'poll-room'), { answers: ['a:poll-room', 'b:poll-room'] });
  });

  test('binary both ways (ack and nested in an event)', async () => {
    const { s } = await connect();
    const back = once(s, 'binary-back');
    const reversed = await call(s, 'binary', Buffer.from([1, 2, 3, 4]));
    assert.deepEqual(Buffer.from(reversed), Buffer.from([4, 3, 2, 1]));
    const [obj] = await back;
    assert.deepEqual(Buffer.from(obj.nested), Buffer.from([1, 2, 3, 4, 0xff]));
    assert.equal(obj.n, 4);
  });

  test('volatile emit reaches a connected WebSocket client', async () => {
    const { s } = await connect({ transports: ['websocket'] });
    const vol = once(s, 'vol');
    s.emit('volatile');
    assert.deepEqual(await vol, ['v']);
  });

  test('socketsJoin and socketsLeave move other sockets', async () => {
    const a = (await connect()).s;
    const b = (await connect()).s;
    await call(a, 'join', 'src');
    await call(b, 'sockets-join', 'src', 'dst');
    const got = collector(a, 'room-msg');
    b.emit('to-room', 'dst', 'hello-dst');
    await got.until(1);
    assert.deepEqual((await call(a, 'whoami')).rooms, [a.id, 'dst', 'src'].sort());
    await call(b, 'sockets-leave', 'src', 'dst');
    assert.deepEqual((await call(a, 'whoami')).rooms, [a.id, 'src'].sort());
  });

  test('fetchSockets: ids, socket.data and rooms', async () => {
    const a = (await connect({ auth: { name: 'ann' } })).s;
    const b = (await connect({ auth: { name: 'bob' } })).s;
    await call(a, 'join', 'fetch-room');
    await call(b, 'join', 'fetch-room');
    const got = await call(a, 'fetch', 'fetch-room');
    const want = [
      { id: a.id, name: 'ann', rooms: [a.id, 'fetch-room'].sort() },
      { id: b.id, name: 'bob', rooms: [b.id, 'fetch-room'].sort() },
    ].sort((x, y) => x.id.localeCompare(y.id));
    assert.deepEqual(got, want);
  });

  test('disconnectSockets: the room\'s sockets are disconnected by the server', async () => {
    const a = (await connect()).s;
    const b = (await connect()).s;
    await call(a, 'join', 'kick');
    const gone = once(a, 'disconnect');
    await call(b, 'disconnect-room', 'kick');
    assert.equal((await gone)[0], 'io server disconnect');
    assert.equal(b.connected, true);
  });

  test('socket.disconnect() and disconnect(true) from the server', async () => {
    const a = (await connect()).s;
    const gone = once(a, 'disconnect');
    a.emit('disconnect-me', false);
    assert.equal((await gone)[0], 'io server disconnect');
    const b = (await connect()).s;
    const goneB = once(b, 'disconnect');
    b.emit('disconnect-me', true);
    assert.equal((await goneB)[0], 'io server disconnect');
  });

  test('a middleware join lands before the connection handler runs', async () => {
    const { welcome, s } = await connect({ auth: { early: 'early-room' } });
    assert.deepEqual(welcome.rooms, [s.id, 'early-room'].sort());
    const b = (await connect()).s;
    const got = collector(s, 'room-msg');
    b.emit('to-room', 'early-room', 'hi-early');
    await got.until(1);
  });

  test('python-socketio client: connect, ack, binary, rejected middleware', { skip: python() ? false : 'no e2e venv with python-socketio' }, async () => {
    const out = await new Promise((resolve, reject) => {
      execFile(python(), [path.join(__dirname, 'py_checks.py'), url()], { timeout: 30000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`py_checks.py failed: ${err.message}\n${stdout}\n${stderr}`));
        else resolve(stdout);
      });
    });
    assert.match(out, /^ok 4 checks$/m);
  });
}

module.exports = { defineClientSuite };

'use strict';
// `limits.rooms_per_socket` in link mode: a join the hub refuses must not leave the app's view of
// `socket.rooms` ahead of the hub's room index — whether the app joined by itself
// (`socket.join`, in a handler or in a middleware before the CONNECT answer) or asked the hub to
// join sockets in bulk (`io.in(…).socketsJoin`). The app is e2e/sdk/app.js behind the real hub.

const { test, describe, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startApp, startLinkHub, connectionString, ACCESS_KEY } = require('./harness');
const { rest } = require('../app/app');
const { Clients, once, call } = require('../harness/client');

/** Ask the app for `s`'s rooms until `pred(rooms)` holds (a deadline, never a bare sleep). */
async function roomsUntil(s, pred, what) {
  const deadline = Date.now() + 5000;
  let last;
  for (;;) {
    last = (await call(s, 'whoami')).rooms;
    if (pred(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; the app says ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The hub's own view of one socket's rooms (REST: the app's fetchSockets would answer with
 * its own socket object for a socket bound to it). */
async function hubRooms(hub, s) {
  const r = await rest(hub, 'POST', '/sockets/fetch', { sockets: [s.id] }, { key: ACCESS_KEY });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.sockets.length, 1);
  return r.body.sockets[0].rooms.sort();
}

describe('room limit in link mode', () => {
  const clients = new Clients();
  const cleanup = [];
  afterEach(async () => {
    clients.closeAll();
    while (cleanup.length) await cleanup.pop()();
  });

  async function setup() {
    const hub = await startLinkHub({ limits: { rooms_per_socket: 2 } });
    cleanup.push(() => hub.close());
    const app = await startApp({ name: 'limited', connectionString: connectionString(hub) });
    cleanup.push(() => app.stop());
    return hub;
  }

  test("a socket.join past the limit is undone in the app's socket.rooms", async () => {
    const hub = await setup();
    const s = await clients.connect(hub.url);
    assert.deepEqual(await call(s, 'join', 'a'), ['a', s.id].sort());
    assert.deepEqual(await call(s, 'join', 'b'), ['a', 'b', s.id].sort());
    // socket.io adds `c` to the app's view at once; the hub refuses it and says so.
    await call(s, 'join', 'c');
    const rooms = await roomsUntil(s, (r) => !r.includes('c'), 'the app to drop the refused room');
    assert.deepEqual(rooms, ['a', 'b', s.id].sort());
    assert.deepEqual(await hubRooms(hub, s), rooms);
  });

  test('rooms joined by a middleware past the limit are undone once the socket is registered', async () => {
    const hub = await setup();
    const s = clients.socket(hub.url, { auth: { early: ['e1', 'e2', 'e3'] } });
    const [welcome] = await once(s, 'welcome');
    assert.deepEqual(welcome.rooms, ['e1', 'e2', 'e3', s.id].sort(), "the app's view when it answered");
    const rooms = await roomsUntil(s, (r) => r.length === 1, 'the app to drop the refused rooms');
    assert.deepEqual(rooms, [s.id]);
    assert.deepEqual(await hubRooms(hub, s), [s.id]);
  });

  test('socketsJoin reaches only the sockets that joined', async () => {
    const hub = await setup();
    const full = await clients.connect(hub.url);
    const free = await clients.connect(hub.url);
    await call(full, 'join', 'a');
    await call(full, 'join', 'b');
    await call(free, 'join', 'a');
    await call(full, 'sockets-join', 'a', 'd');
    const joined = await roomsUntil(free, (r) => r.includes('d'), 'the joined socket to be in d');
    assert.deepEqual(joined, ['a', 'd', free.id].sort());
    assert.deepEqual(await hubRooms(hub, free), joined);
    // The refused socket: the hub did not change it, and the app heard of no join.
    assert.deepEqual(await hubRooms(hub, full), ['a', 'b', full.id].sort());
    assert.deepEqual((await call(full, 'whoami')).rooms, ['a', 'b', full.id].sort());
  });
});

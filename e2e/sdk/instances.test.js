'use strict';
// Several application servers behind one hub: clients are shared between them, serverSideEmit
// and fetchSockets span them, and when one goes away its clients stay connected to the hub and
// are re-bound to the other (which sees a new `connection`; ids and rooms are kept by the hub).

const { test, before, after, beforeEach, afterEach, describe } = require('node:test');
const assert = require('node:assert/strict');
const { startApp, startLinkHub, waitForLinks, connectionString } = require('./harness');
const { Clients, once, call, collector } = require('../harness/client');

describe('two application servers behind one hub', () => {
  let hub;
  let appA;
  let appB;
  let clients;
  before(async () => {
    hub = await startLinkHub();
    appA = await startApp({ name: 'A', connectionString: connectionString(hub) });
    appB = await startApp({ name: 'B', connectionString: connectionString(hub) });
    await waitForLinks(hub, 2);
  });
  after(async () => {
    for (const app of [appA, appB]) if (app) await app.stop();
    if (hub) await hub.close();
  });
  beforeEach(() => { clients = new Clients(); });
  afterEach(() => clients.closeAll());

  /** Connect clients until there is one on each app; returns { A: socket, B: socket }. */
  async function oneOnEach(auth = {}) {
    const byApp = {};
    for (let i = 0; i < 8 && !(byApp.A && byApp.B); i++) {
      const s = clients.socket(hub.url, { auth: { name: `n${i}`, ...auth } });
      const [welcome] = await once(s, 'welcome');
      if (!byApp[welcome.app]) byApp[welcome.app] = s;
    }
    assert.ok(byApp.A && byApp.B, 'clients were not shared between A and B');
    return byApp;
  }

  test('clients are spread over both servers', async () => {
    const apps = [];
    for (let i = 0; i < 6; i++) {
      const s = clients.socket(hub.url);
      apps.push((await once(s, 'welcome'))[0].app);
    }
    assert.equal(apps.filter((a) => a === 'A').length, 3, `apps: ${apps}`);
    assert.equal(apps.filter((a) => a === 'B').length, 3, `apps: ${apps}`);
  });

  test('serverSideEmit with acks reaches the other server, and back', async () => {
    const { A, B } = await oneOnEach();
    assert.deepEqual(await call(A, 'ask-servers'), { answers: ['B'] });
    assert.deepEqual(await call(B, 'ask-servers'), { answers: ['A'] });
  });

  test('serverSideEmit without ack: the other server acts on it', async () => {
    const { A, B } = await oneOnEach();
    const notes = collector(B, 'note');
    await call(A, 'tell-servers', 'hello');
    const [[note]] = await notes.until(1);
    assert.deepEqual(note, { from: 'A', msg: 'hello', at: 'B' });
  });

  test('rooms, broadcasts and fetchSockets span both servers', async () => {
    const { A, B } = await oneOnEach();
    await call(A, 'join', 'both');
    await call(B, 'join', 'both');
    const got = collector(B, 'room-msg');
    A.emit('to-room', 'both', 'from-a');
    await got.until(1);
    const fetched = await call(A, 'fetch', 'both');
    assert.deepEqual(fetched.map((f) => f.id).sort(), [A.id, B.id].sort());
    const nameOfB = (await call(B, 'whoami')).name;
    assert.equal(fetched.find((f) => f.id === B.id).name, nameOfB, 'socket.data of the other server\'s socket');
  });

  test('a server goes away: its clients stay connected and are re-bound, with id and rooms', async () => {
    const { A, B } = await oneOnEach();
    await call(A, 'join', 'kept');
    const idA = A.id;
    let disconnected = false;
    A.on('disconnect', () => { disconnected = true; });
    await appA.kill();
    appA = null;
    await waitForLinks(hub, 1);
    const me = await call(A, 'whoami');
    assert.equal(me.app, 'B');
    assert.equal(me.id, idA);
    assert.deepEqual(me.rooms, [idA, 'kept'].sort());
    const got = collector(A, 'room-msg');
    B.emit('to-room', 'kept', 'still-here');
    await got.until(1);
    assert.equal(disconnected, false, 'the client saw a disconnect');
    assert.deepEqual(await call(A, 'echo', 'after-rebind'), 'after-rebind');
  });
});

'use strict';
// Failure handling of the server link: no application server (clients wait, then a clear
// CONNECT_ERROR; served if one arrives meanwhile), a wrong key (an immediate, clear error and no
// retry loop), link mode off (a clear refusal), and the SDK's refusals of APIs that cannot work.

const { test, describe, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { Server } = require('socket.io');
const { useHub, HubUnsupportedError } = require('../../sdk/node');
const { startApp, startLinkHub, waitForLinks, connectionString } = require('./harness');
const { startHub } = require('../harness/hub');
const { Clients, once, connectError } = require('../harness/client');

describe('server link failures', () => {
  const clients = new Clients();
  const cleanup = [];
  afterEach(async () => {
    clients.closeAll();
    while (cleanup.length) await cleanup.pop()();
  });

  test('no application server: the client waits, then gets a clear connect_error', async () => {
    const hub = await startLinkHub({ socketio: { connect_timeout_ms: 1500 } });
    cleanup.push(() => hub.close());
    const started = Date.now();
    const err = await connectError(clients.socket(hub.url));
    assert.equal(err.message, 'no application server is connected to the hub');
    assert.deepEqual(err.data, { reason: 'no_app_server' });
    assert.ok(Date.now() - started >= 1000, 'answered before the wait');
  });

  test('a client waiting for an application server is served when one connects', async () => {
    const hub = await startLinkHub({ socketio: { connect_timeout_ms: 20000 } });
    cleanup.push(() => hub.close());
    const s = clients.socket(hub.url, { auth: { name: 'early-bird' } });
    const welcome = once(s, 'welcome');
    const app = await startApp({ name: 'late', connectionString: connectionString(hub) });
    cleanup.push(() => app.stop());
    const [w] = await welcome;
    assert.equal(w.app, 'late');
    assert.equal(w.id, s.id);
  });

  test('a wrong access key: an immediate clear error, no retry loop', async () => {
    const hub = await startLinkHub();
    cleanup.push(() => hub.close());
    const io = new Server();
    const h = useHub(io, { connectionString: connectionString(hub, 'x'.repeat(40)), logger: null });
    cleanup.push(async () => io.close());
    const started = Date.now();
    await assert.rejects(h.ready, (err) => {
      assert.equal(err.code, 'UNAUTHORIZED');
      assert.match(err.message, /HTTP 401/);
      assert.match(err.message, /AccessKey/);
      return true;
    });
    assert.ok(Date.now() - started < 5000);
    assert.equal(h.link.timer, null, 'a retry is scheduled');
    await waitForLinks(hub, 0);
  });

  test('link mode off: the SDK is told so', async () => {
    const hub = await startHub({});
    cleanup.push(() => hub.close());
    const io = new Server();
    const h = useHub(io, { connectionString: connectionString(hub), logger: null });
    cleanup.push(async () => io.close());
    await assert.rejects(h.ready, /HTTP 404.*upstream\.mode = "link"/);
  });

  test('APIs that cannot work behind the hub throw, naming the API', async () => {
    const hub = await startLinkHub();
    cleanup.push(() => hub.close());
    assert.throws(
      () => useHub(new Server({ connectionStateRecovery: {} }), { connectionString: connectionString(hub), logger: null }),
      (e) => e instanceof HubUnsupportedError && /connectionStateRecovery/.test(e.message),
    );
    const io = new Server();
    const h = useHub(io, { connectionString: connectionString(hub), logger: null });
    cleanup.push(async () => io.close());
    await h.ready;
    assert.throws(() => io.local.emit('x'), (e) => e instanceof HubUnsupportedError && /local/.test(e.message));
    assert.throws(() => io.engine.on('headers', () => {}), /io\.engine\.on\("headers"\)/);
  });
});

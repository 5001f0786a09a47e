'use strict';
// The Admin UI namespace on one node in its defaults (production mode): aggregates only, no
// socket list; read-only mode; the admin namespace in link mode and with client tokens
// required; credentialed CORS for the hosted UI's origin; the UI's static files.

const { test, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const bcrypt = require('bcryptjs');
const { startHub, IMPL } = require('../harness/hub');
const { Clients, once, connectError, collector } = require('../harness/client');

const skip = IMPL === 'reference' ? 'the admin namespace is part of the hub, not of the reference server' : false;
const PASSWORD = 'pw-for-tests';
const HASH = bcrypt.hashSync(PASSWORD, 4);
const UI_DIR = path.join(__dirname, '..', '..', 'dataplane', 'admin-ui', 'node_modules', '@socket.io', 'admin-ui', 'ui', 'dist');
const ws = { transports: ['websocket'] };
const creds = { username: 'admin', password: PASSWORD };

const hubs = [];
const clients = new Clients();
afterEach(() => clients.closeAll());
after(async () => { await Promise.all(hubs.map((hub) => hub.close())); });

async function hubWith(adminUi, extra = {}) {
  const auth = adminUi.auth === 'none' ? {} : { username: 'admin', password_hash: HASH };
  const hub = await startHub({ admin_ui: { enabled: true, ...auth, ...adminUi }, ...extra });
  hubs.push(hub);
  return hub;
}

const wait = (ms) => new Promise((r) => setTimeout(r, ms));

test('production mode (the default): config without ALL_EVENTS, server_stats with aggregates, no socket list or live events', { skip }, async () => {
  const hub = await hubWith({ stats_interval_ms: 500 });
  const s = clients.socket(`${hub.url}/admin`, { ...ws, auth: creds });
  const config = once(s, 'config');
  const session = once(s, 'session');
  const stats = collector(s, 'server_stats');
  const live = [];
  for (const ev of ['all_sockets', 'socket_connected', 'room_joined', 'event_received']) s.on(ev, () => live.push(ev));
  await once(s, 'connect');
  assert.match((await session)[0], /^\d+\./);
  assert.deepEqual((await config)[0].supportedFeatures,
    ['EMIT', 'JOIN', 'LEAVE', 'DISCONNECT', 'MJOIN', 'MLEAVE', 'MDISCONNECT', 'AGGREGATED_EVENTS']);
  const app = await clients.connect(hub.url, { transports: ['polling'] });
  app.emit('ping', 'x'.repeat(1000));
  // Aggregates: a polling client counted, its connection and bytes in.
  const deadline = Date.now() + 10000;
  const sum = (type) => stats.got.flatMap(([st]) => st.aggregatedEvents).filter((e) => e.type === type)
    .reduce((n, e) => n + e.count, 0);
  while (!(sum('rawConnection') >= 1 && sum('bytesIn') >= 1000 && stats.got.some(([st]) => st.pollingClientsCount === 1))) {
    assert.ok(Date.now() < deadline, `aggregates never showed the client: ${JSON.stringify(stats.got.slice(-2))}`);
    await wait(100);
  }
  const last = stats.got[stats.got.length - 1][0];
  assert.deepEqual(last.namespaces.find((n) => n.name === '/'), { name: '/', socketsCount: 1 });
  app.disconnect();
  while (!stats.got.some(([st]) => st.aggregatedEvents.some((e) => e.type === 'rawDisconnection' && e.subType === 'transport close'))) {
    assert.ok(Date.now() < deadline + 5000, 'no rawDisconnection "transport close"');
    await wait(100);
  }
  assert.deepEqual(live, [], 'production mode sends no socket list or per-socket events');
  const metrics = await (await fetch(`${hub.adminUrl}/metrics`)).text();
  assert.match(metrics, /socketio_hub_admin_ui_logins_total\{result="password"\} 1/);
});

test('read-only: no features, and commands are refused', { skip }, async () => {
  const hub = await hubWith({ readonly: true });
  const victim = await clients.connect(hub.url, ws);
  const s = clients.socket(`${hub.url}/admin`, { ...ws, auth: creds });
  const config = once(s, 'config');
  await once(s, 'connect');
  assert.deepEqual((await config)[0].supportedFeatures, ['AGGREGATED_EVENTS']);
  s.emit('_disconnect', '/', true, victim.id);
  const deadline = Date.now() + 5000;
  let metrics = '';
  while (!/admin_ui_commands_total\{command="disconnect",result="refused"\} 1/.test(metrics)) {
    assert.ok(Date.now() < deadline, 'the refused command was not counted');
    metrics = await (await fetch(`${hub.adminUrl}/metrics`)).text();
    await wait(50);
  }
  assert.ok(victim.connected);
});

test('the admin namespace is the hub\'s own: served in link mode and when client tokens are required', { skip }, async () => {
  const hub = await hubWith({ auth: 'none' },
    { upstream: { mode: 'link' }, auth: { client_auth: 'required' }, socketio: { namespaces: ['/app'] } });
  const s = clients.socket(`${hub.url}/admin`, { ...ws, auth: {} });
  const config = once(s, 'config');
  await once(s, 'connect');
  assert.ok((await config)[0].supportedFeatures.includes('EMIT'));
  // Other namespaces keep their rules.
  const other = clients.socket(`${hub.url}/elsewhere`, ws);
  assert.equal((await connectError(other)).message, 'Invalid namespace');
});

test('CORS: the hosted UI\'s origin is allowed with credentials, others follow cors.*', { skip }, async () => {
  const hub = await hubWith({}, { cors: { allowed_origins: ['https://app.example'] } });
  const url = `${hub.url}/socket.io/?EIO=4&transport=polling`;
  const pre = await fetch(url, { method: 'OPTIONS', headers: { origin: 'https://admin.socket.io', 'access-control-request-method': 'GET' } });
  assert.equal(pre.headers.get('access-control-allow-origin'), 'https://admin.socket.io');
  assert.equal(pre.headers.get('access-control-allow-credentials'), 'true');
  const hs = await fetch(url, { headers: { origin: 'https://admin.socket.io' } });
  assert.equal(hs.status, 200);
  assert.equal(hs.headers.get('access-control-allow-credentials'), 'true');
  const app = await fetch(url, { headers: { origin: 'https://app.example' } });
  assert.equal(app.headers.get('access-control-allow-origin'), 'https://app.example');
  assert.equal(app.headers.get('access-control-allow-credentials'), null);
  assert.equal((await fetch(url, { headers: { origin: 'https://evil.example' } })).status, 403);
});

test('static files: the UI from ui_dir at ui_path; start refused without files to serve', { skip: skip || (!fs.existsSync(UI_DIR) && 'no Admin UI build (npm ci in dataplane/admin-ui/)') }, async () => {
  const hub = await hubWith({ serve_ui: true, ui_dir: UI_DIR, ui_path: '/console/' });
  const index = await fetch(`${hub.url}/console/`);
  assert.equal(index.status, 200);
  assert.match(index.headers.get('content-type'), /^text\/html/);
  const html = await index.text();
  assert.match(html, /Socket\.IO Admin UI/);
  const script = html.match(/src="(js\/app\.[0-9a-f]+\.js)"/)[1];
  const js = await fetch(`${hub.url}/console/${script}`);
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type'), /^application\/javascript/);
  assert.equal((await fetch(`${hub.url}/console`, { redirect: 'manual' })).status, 308);
  assert.equal((await fetch(`${hub.url}/console/..%2f..%2fpackage.json`)).status, 404);
  assert.equal((await fetch(`${hub.url}/console/nope.js`)).status, 404);
  // A directory without the UI is refused at start with the fix named.
  await assert.rejects(startHub({ admin_ui: { enabled: true, auth: 'none', serve_ui: true, ui_dir: __dirname } },
    { env: { RUST_BACKTRACE: '0', RUST_LIB_BACKTRACE: '0' } }),
    /admin_ui.ui_dir .* has no index.html/);
});

test('static files: the copy embedded at build time (SOCKETIO_HUB_ADMIN_UI_DIST), when the binary has one', { skip }, async (t) => {
  let hub;
  try {
    hub = await startHub({ admin_ui: { enabled: true, auth: 'none', serve_ui: true } },
      { env: { RUST_BACKTRACE: '0', RUST_LIB_BACKTRACE: '0' } });
  } catch (e) {
    assert.match(String(e), /built without the UI \(SOCKETIO_HUB_ADMIN_UI_DIST unset\)/);
    t.skip('this hub binary was built without SOCKETIO_HUB_ADMIN_UI_DIST (scripts/test sets it)');
    return;
  }
  hubs.push(hub);
  const index = await fetch(`${hub.url}/admin-ui/`);
  assert.equal(index.status, 200);
  const html = await index.text();
  assert.match(html, /Socket\.IO Admin UI/);
  const css = html.match(/href="(css\/app\.[0-9a-f]+\.css)"/)[1];
  const r = await fetch(`${hub.url}/admin-ui/${css}`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/css/);
  assert.equal((await fetch(`${hub.url}/admin-ui/js/missing.js`)).status, 404);
});

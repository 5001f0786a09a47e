'use strict';
// The official Socket.IO Admin UI (`@socket.io/admin-ui` 0.5.1, its own built page, served by the
// hub from `admin_ui.ui_dir`) in headless Debian Chromium against a 3-node cluster: logging in
// through the UI's form, it lists the three servers, the sockets of every node and their rooms,
// and its disconnect button disconnects a socket held by another node.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const bcrypt = require('bcryptjs');
const { chromium } = require('playwright-core');
const { IMPL } = require('../harness/hub');
const { Clients, call, once } = require('../harness/client');
const h = require('../cluster/harness');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const WAIT = 20000;
const UI_DIR = path.join(__dirname, '..', '..', 'dataplane', 'admin-ui', 'node_modules', '@socket.io', 'admin-ui', 'ui', 'dist');
const PASSWORD = 'ui-password';

const skip = !fs.existsSync(CHROMIUM) ? `no Chromium at ${CHROMIUM}`
  : IMPL === 'reference' ? 'the admin namespace is part of the hub, not of the reference server'
    : !fs.existsSync(path.join(UI_DIR, 'index.html')) ? `no Admin UI build at ${UI_DIR} (npm ci in dataplane/admin-ui/)` : false;

let cluster;
let browser;
const clients = new Clients();
before(async () => {
  if (skip) return;
  cluster = await h.startCluster(3, {
    admin_ui: {
      enabled: true,
      username: 'admin',
      password_hash: bcrypt.hashSync(PASSWORD, 4),
      mode: 'development',
      serve_ui: true,
      ui_dir: UI_DIR,
    },
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 60000 });
});
after(async () => {
  clients.closeAll();
  if (browser) await browser.close();
  if (cluster) await h.stopCluster(cluster);
});

async function member(i, room) {
  const s = await clients.connect(cluster.nodes[i].url, { transports: ['websocket'] });
  assert.deepEqual(await call(s, 'hub:join', room), { ok: true });
  return s;
}

test('the Admin UI page lists three servers, their sockets and rooms, and disconnects a socket', { skip, timeout: 180000 }, async () => {
  const a = await member(0, 'red');
  const b = await member(1, 'blue');
  const c = await member(2, 'red');
  await h.waitRoom(cluster, 'red', [0, 2]);
  await h.waitRoom(cluster, 'blue', [1]);

  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  // The page links web fonts from CDNs; this machine is offline, so refuse them at once.
  await page.route((url) => !['127.0.0.1', '127.0.0.2', '127.0.0.3'].includes(url.hostname), (r) => r.abort());
  const base = `${cluster.nodes[0].url}/admin-ui/`;
  await page.goto(base, { timeout: WAIT, waitUntil: 'domcontentloaded' });

  // The UI's own login form, with a wrong password first.
  await page.getByLabel('Server URL').fill(cluster.nodes[0].url, { timeout: WAIT });
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('wrong');
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.getByText('Invalid credentials').waitFor({ timeout: WAIT });
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.getByRole('dialog').waitFor({ state: 'hidden', timeout: WAIT });

  // Servers: one row per node, by node name.
  await page.goto(`${base}#/servers/`, { waitUntil: 'domcontentloaded' });
  for (const name of ['n1', 'n2', 'n3']) {
    await page.getByRole('cell', { name, exact: true }).waitFor({ timeout: WAIT });
  }

  // Sockets of namespace `/` on every node.
  await page.goto(`${base}#/sockets/`, { waitUntil: 'domcontentloaded' });
  for (const s of [a, b, c]) {
    await page.getByRole('cell', { name: s.id, exact: true }).waitFor({ timeout: WAIT });
  }

  // Rooms: both public rooms.
  await page.goto(`${base}#/rooms/`, { waitUntil: 'domcontentloaded' });
  for (const room of ['red', 'blue']) {
    await page.getByRole('cell', { name: room, exact: true }).waitFor({ timeout: WAIT });
  }

  // Disconnect c (held by n3; the UI is connected to n1) with its row's button.
  await page.goto(`${base}#/sockets/`, { waitUntil: 'domcontentloaded' });
  const row = page.getByRole('row').filter({ has: page.getByRole('cell', { name: c.id, exact: true }) });
  const gone = once(c, 'disconnect', WAIT);
  await row.getByRole('button').click({ timeout: WAIT });
  assert.equal((await gone)[0], 'io server disconnect');
  assert.ok(a.connected && b.connected, 'only the chosen socket was disconnected');
  // The UI saw it go (the click also opened its details page): its status turns disconnected.
  await page.getByText('disconnected', { exact: true }).first().waitFor({ timeout: WAIT });
  if (process.env.E2E_SCREENSHOT) await page.screenshot({ path: process.env.E2E_SCREENSHOT });
  assert.deepEqual(errors, [], 'no uncaught errors in the page');
});

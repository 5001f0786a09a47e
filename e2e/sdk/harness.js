'use strict';
// The acceptance test's two setups: the plain socket.io app serving its clients itself, and the
// same app behind a hub in link mode (only SOCKETIO_HUB_CONNECTION_STRING set). Each app runs as
// its own process (`app.js`), so one can be killed like a crashed server.

const { spawn } = require('node:child_process');
const path = require('node:path');
const { startHub, ACCESS_KEY } = require('../harness/hub');
const { withTimeout } = require('../harness/client');

const live = new Set();
process.on('exit', () => { for (const c of live) { try { c.kill('SIGKILL'); } catch { /* gone */ } } });

/** Start `app.js`; resolves once it printed its ready line. */
function startApp({ name = 'app', connectionString, env = {} } = {}) {
  const childEnv = { ...process.env, APP_NAME: name, ...env };
  delete childEnv.SOCKETIO_HUB_CONNECTION_STRING;
  if (connectionString) childEnv.SOCKETIO_HUB_CONNECTION_STRING = connectionString;
  const child = spawn(process.execPath, [path.join(__dirname, 'app.js')], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const output = [];
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => { live.delete(child); resolve({ code, signal }); }));
  const app = {
    child,
    output,
    exited,
    log: () => output.join(''),
    url: null,
    async kill() { child.kill('SIGKILL'); return exited; },
    async stop() { child.kill('SIGTERM'); return exited; },
  };
  return withTimeout(new Promise((resolve, reject) => {
    const onData = (chunk) => {
      output.push(chunk.toString());
      if (process.env.APP_LOG) process.stderr.write(`app ${name}: ${chunk}`);
      const m = /app ready port=(\d+)/.exec(output.join(''));
      if (m && !app.url) {
        app.url = `http://127.0.0.1:${m[1]}`;
        resolve(app);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', () => { if (!app.url) reject(new Error(`app ${name} exited before it was ready:\n${app.log()}`)); });
  }), `app ${name} to start`);
}

/** The number of server links the hub reports. */
async function serverLinks(hub) {
  const text = await (await fetch(`${hub.adminUrl}/metrics`)).text();
  const m = /^socketio_hub_server_links (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

/** Wait (with a deadline) until the hub has `n` server links. */
async function waitForLinks(hub, n, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if ((await serverLinks(hub)) === n) return;
    if (Date.now() > deadline) throw new Error(`hub did not reach ${n} server links in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A hub in link mode. */
function startLinkHub(extra = {}) {
  return startHub({ upstream: { mode: 'link' }, ...extra });
}

function connectionString(hub, key = ACCESS_KEY) {
  return `Endpoint=${hub.url};AccessKey=${key};`;
}

module.exports = { startApp, startLinkHub, waitForLinks, serverLinks, connectionString, ACCESS_KEY };

'use strict';
// Starts the hub under test as a child process and hands back its addresses.
//
// HUB_IMPL=hub (default) runs the real binary: $HUB_BIN, else <repo>/target/debug/socketio-hub.
// HUB_IMPL=reference runs e2e/reference/server.js, a plain Node socket.io server implementing the
// same contract, used to prove the tests themselves are right.
//
// Every hub is started with `--config <tmp file> --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0`
// and is ready when it prints `socketio-hub ready clients=<ip:port> admin=<ip:port>` on stdout.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { toToml } = require('./toml');

const REPO = path.resolve(__dirname, '..', '..');
const IMPL = process.env.HUB_IMPL || 'hub';
const HUB_BIN = process.env.HUB_BIN || path.join(REPO, 'target', 'debug', 'socketio-hub');
const READY = /socketio-hub ready clients=(\S+) admin=(\S+)/;
const START_TIMEOUT_MS = Number(process.env.HUB_START_TIMEOUT_MS || 30000);

/** The access key every test hub is configured with (32+ chars, as the hub requires). */
const ACCESS_KEY = 'e2e-access-key-0123456789abcdefghijklmnopqrstuv';
const SECOND_KEY = 'e2e-second-key-zyxwvutsrqponmlkjihgfedcba9876543';

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

function deepMerge(base, over) {
  if (over === undefined) return base;
  if (base === null || typeof base !== 'object' || Array.isArray(base)) return over;
  if (over === null || typeof over !== 'object' || Array.isArray(over)) return over;
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = deepMerge(base[k], v);
  return out;
}

/** Defaults for every test hub; a test's own config is merged over them. */
function defaults() {
  return {
    demo_page: false,
    shutdown_grace_ms: 1000,
    auth: { access_keys: [ACCESS_KEY] },
  };
}

function command(configFile, listen, adminListen) {
  const args = ['--config', configFile, '--listen', listen, '--admin-listen', adminListen];
  if (IMPL === 'reference') {
    return [process.execPath, [path.join(REPO, 'e2e', 'reference', 'server.js'), ...args]];
  }
  if (IMPL !== 'hub') throw new Error(`HUB_IMPL must be "hub" or "reference", not ${IMPL}`);
  if (!fs.existsSync(HUB_BIN)) {
    throw new Error(`hub binary not found at ${HUB_BIN}: run \`cargo build\` or set HUB_BIN`);
  }
  return [HUB_BIN, args];
}

/**
 * Start a hub.
 * @param {object|string} config - a HubConfig-shaped object (merged over the defaults) or raw TOML.
 * @param {object} [opts] - { env, listen, adminListen, wrap } (listen = "127.0.0.1:PORT" to reuse a
 *   port; wrap = a command prefix that execs the hub, e.g. ["ip", "netns", "exec", ns]).
 */
async function startHub(config = {}, opts = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sioh-e2e-'));
  const file = path.join(dir, 'hub.toml');
  const toml = typeof config === 'string' ? config : toToml(deepMerge(defaults(), config));
  fs.writeFileSync(file, toml);
  const hub = new Hub(file, toml, dir, opts);
  await hub.start(opts.listen || '127.0.0.1:0');
  return hub;
}

class Hub {
  constructor(file, toml, dir, opts) {
    this.file = file;
    this.toml = toml;
    this.dir = dir;
    this.opts = opts;
    this.output = [];
    this.child = null;
    this.exited = null;
  }

  get url() { return `http://${this.clients}`; }
  get adminUrl() { return `http://${this.admin}`; }
  get port() { return Number(this.clients.split(':').pop()); }

  /** The last lines the hub printed, for failure messages. */
  log(n = 60) { return this.output.slice(-n).join('\n'); }

  start(listen) {
    const [bin, args] = command(this.file, listen, this.opts.adminListen || '127.0.0.1:0');
    // `wrap` runs the hub under a prefix that execs it (e.g. `ip netns exec <ns>`), so the
    // child's pid is still the hub's and signals reach it.
    const wrap = this.opts.wrap || [];
    const child = spawn(wrap.length ? wrap[0] : bin, wrap.length ? [...wrap.slice(1), bin, ...args] : args, {
      env: { ...process.env, RUST_BACKTRACE: '1', ...(this.opts.env || {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    live.add(child);
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    }));
    return new Promise((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`hub did not print its ready line within ${START_TIMEOUT_MS} ms:\n${this.log()}`));
      }, START_TIMEOUT_MS);
      const onLine = (stream) => (line) => {
        this.output.push(`[${stream}] ${line}`);
        if (this.output.length > 2000) this.output.splice(0, 1000);
        if (process.env.HUB_LOG) process.stderr.write(`hub ${stream}: ${line}\n`);
        const m = !ready && stream === 'stdout' && READY.exec(line);
        if (m) {
          ready = true;
          clearTimeout(timer);
          this.clients = m[1];
          this.admin = m[2];
          resolve(this);
        }
      };
      lines(child.stdout, onLine('stdout'));
      lines(child.stderr, onLine('stderr'));
      child.on('error', (e) => { clearTimeout(timer); reject(e); });
      this.exited.then(({ code, signal }) => {
        if (!ready) {
          clearTimeout(timer);
          reject(new Error(`hub exited (code ${code}, signal ${signal}) before it was ready:\n${this.log()}`));
        }
      });
    });
  }

  /** Stop with SIGTERM (graceful), then SIGKILL after `graceMs`. Resolves with the exit status. */
  async stop(graceMs = 5000) {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return this.exited;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const status = await this.exited;
    clearTimeout(timer);
    return status;
  }

  /** Kill at once (no drain), as a crash would. */
  async kill() {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    return this.exited;
  }

  /** Stop and start again on the same client port (so clients can reconnect to the same URL). */
  async restart({ hard = false } = {}) {
    const listen = this.clients;
    if (hard) await this.kill(); else await this.stop();
    // The port may linger briefly; retry binding for a few seconds.
    const deadline = Date.now() + 10000;
    for (;;) {
      try {
        await this.start(listen);
        return this;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  async close() {
    await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function lines(stream, onLine) {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i).replace(/\r$/, ''));
      buf = buf.slice(i + 1);
    }
  });
  stream.on('end', () => { if (buf) onLine(buf); });
}

module.exports = { startHub, ACCESS_KEY, SECOND_KEY, IMPL, HUB_BIN, REPO, deepMerge };

'use strict';
// Helpers for tests that drive the hub with socket.io-client: connecting with cleanup, awaiting
// events with a deadline (never a bare sleep), and minting HS256 JWTs.

const crypto = require('node:crypto');
const { io } = require('socket.io-client');

const WAIT_MS = Number(process.env.E2E_WAIT_MS || 10000);

/** Tracks sockets and managers so each test can close everything it opened. */
class Clients {
  constructor() { this.sockets = new Set(); }

  /** Create a socket (not yet awaited). Reconnection is off unless asked for. */
  socket(url, opts = {}) {
    const s = io(url, { reconnection: false, forceNew: true, timeout: WAIT_MS, ...opts });
    this.sockets.add(s);
    return s;
  }

  /** Create a socket and wait until it is connected; rejects with the connect_error. */
  async connect(url, opts = {}) {
    const s = this.socket(url, opts);
    await connected(s);
    return s;
  }

  closeAll() {
    for (const s of this.sockets) {
      s.disconnect();
      if (s.io && s.io.engine) s.io.engine.close();
    }
    this.sockets.clear();
  }
}

function withTimeout(promise, what, ms = WAIT_MS) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Resolves when `s` connects; rejects with the connect_error (its message and data kept). */
function connected(s, ms = WAIT_MS) {
  if (s.connected) return Promise.resolve(s);
  return withTimeout(new Promise((resolve, reject) => {
    const ok = () => { s.off('connect_error', bad); resolve(s); };
    const bad = (err) => { s.off('connect', ok); reject(err); };
    s.once('connect', ok);
    s.once('connect_error', bad);
  }), 'connect', ms);
}

/** Resolves with the args of the next `event` emitted by `emitter`. */
function once(emitter, event, ms = WAIT_MS) {
  return withTimeout(new Promise((resolve) => {
    emitter.once(event, (...args) => resolve(args));
  }), `event "${event}"`, ms);
}

/** Resolves with the connect_error the socket gets (fails if it connects instead). */
function connectError(s, ms = WAIT_MS) {
  return withTimeout(new Promise((resolve, reject) => {
    s.once('connect', () => reject(new Error('connected, but a connect_error was expected')));
    s.once('connect_error', resolve);
  }), 'connect_error', ms);
}

/** Emit with an ack and resolve with the ack's first argument. */
function call(s, event, ...args) {
  return s.timeout(WAIT_MS).emitWithAck(event, ...args);
}

/** Collects every `event` received by `s`; `until(n)` resolves when n have arrived. */
function collector(s, event) {
  const got = [];
  let waiters = [];
  s.on(event, (...args) => {
    got.push(args);
    waiters = waiters.filter((w) => (got.length >= w.n ? (w.resolve(got), false) : true));
  });
  return {
    got,
    until(n, ms = WAIT_MS) {
      if (got.length >= n) return Promise.resolve(got);
      return withTimeout(new Promise((resolve) => waiters.push({ n, resolve })), `${n} "${event}" events (got ${got.length})`, ms);
    },
  };
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** Sign an HS256 JWT. `claims` gets `iat`, and `exp` in `expiresIn` seconds unless given. */
function signJwt(claims, key, { expiresIn = 3600 } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const payload = { iat: now, ...claims };
  if (payload.exp === undefined && expiresIn !== null) payload.exp = now + expiresIn;
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(payload));
  const sig = crypto.createHmac('sha256', key).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

module.exports = { Clients, connected, once, connectError, call, collector, signJwt, withTimeout, WAIT_MS };

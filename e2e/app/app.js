'use strict';
// A small serverless application for the e2e tests: it receives the hub's webhooks (verifying
// each with the documented verifier, verify.js: signature over timestamp, ce-id, ce-type,
// ce-source and body; timestamp tolerance; replayed ids), answers them as each test tells it
// to, and calls the hub's REST API with an access-key JWT. With `enforce`, a call the verifier
// refuses is answered 401 `{"message": <reason>}` and never reaches a handler.
//
// Run alone (`node e2e/app/app.js --port 4000 --key <access key>`) it is an echo app: it accepts
// every connection and acks every event with its own arguments.

const crypto = require('node:crypto');
const http = require('node:http');
const { signJwt, withTimeout, WAIT_MS } = require('../harness/client');
const { verifyWebhook } = require('./verify');

/** Which key made each `v1=` entry of `ce-signature` (null for none), in order. */
function signedBy(headers, raw, keys) {
  const signed = Buffer.concat([
    Buffer.from(`${headers['ce-timestamp']}\n${headers['ce-id']}\n${headers['ce-type']}\n${headers['ce-source']}\n`), raw,
  ]);
  return String(headers['ce-signature'] || '').split(',').map((p) => {
    const m = /^v1=([0-9a-f]{64})$/.exec(p.trim());
    if (!m) return null;
    const got = Buffer.from(m[1], 'hex');
    return keys.find((k) => crypto.timingSafeEqual(got, crypto.createHmac('sha256', k).update(signed).digest())) || null;
  });
}

/** Convert `{"_binary": base64}` values to Buffers (and back with `toWire`). */
function fromWire(v) {
  if (Array.isArray(v)) return v.map(fromWire);
  if (v && typeof v === 'object') {
    const ks = Object.keys(v);
    if (ks.length === 1 && ks[0] === '_binary') return Buffer.from(v._binary, 'base64');
    return Object.fromEntries(ks.map((k) => [k, fromWire(v[k])]));
  }
  return v;
}
function toWire(v) {
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return { _binary: Buffer.from(v).toString('base64') };
  if (Array.isArray(v)) return v.map(toWire);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toWire(x)]));
  return v;
}

/**
 * Start the app. `handlers[type](body, call)` returns `{ status, body }` (body: object, string or
 * undefined) or a promise of it; the defaults accept connections and ack events with [].
 */
async function startApp({ keys, handlers = {}, port = 0, enforce = false } = {}) {
  const calls = [];
  const seen = new Map();
  const waiters = [];
  const app = {
    calls,
    /** Every call's verdict (null = genuine), refused ones included, in arrival order. */
    verdicts: [],
    handlers: {
      connect: () => ({ status: 200, body: {} }),
      connected: () => ({ status: 204 }),
      event: () => ({ status: 200, body: [] }),
      disconnected: () => ({ status: 204 }),
      ...handlers,
    },
    /** Resolves with the first recorded call matching `type` and `pred(body)`. */
    waitFor(type, pred = () => true, ms = WAIT_MS) {
      const found = calls.find((c) => c.body && c.body.type === type && pred(c.body));
      if (found) return Promise.resolve(found);
      return withTimeout(new Promise((resolve) => waiters.push({ type, pred, resolve })), `webhook "${type}"`, ms);
    },
  };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const raw = Buffer.concat(chunks);
      let body = null;
      try { body = JSON.parse(raw.toString('utf8')); } catch { /* recorded as null */ }
      const verdict = keys ? verifyWebhook(req.headers, raw, keys, seen) : null;
      const call = {
        method: req.method, url: req.url, headers: req.headers, raw, body, verdict,
        signedBy: keys ? signedBy(req.headers, raw, keys) : [],
      };
      app.verdicts.push(verdict);
      if (enforce && verdict !== null) {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: verdict }));
        return;
      }
      calls.push(call);
      for (let i = waiters.length - 1; i >= 0; i -= 1) {
        const w = waiters[i];
        if (body && body.type === w.type && w.pred(body)) { waiters.splice(i, 1); w.resolve(call); }
      }
      const handler = body && app.handlers[body.type];
      let answer = handler ? await handler(body, call) : { status: 400, body: { message: 'unknown webhook' } };
      if (!answer) answer = { status: 204 };
      if (res.destroyed) return;
      const text = answer.body === undefined ? '' : typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body);
      res.writeHead(answer.status, text ? { 'content-type': 'application/json' } : {});
      res.end(text);
    });
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  app.url = `http://127.0.0.1:${server.address().port}/webhook`;
  app.close = () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); });
  return app;
}

/** Call the hub's REST API. Resolves with { status, body } (body parsed as JSON when it is). */
async function rest(hub, method, path, body, { key, token, raw } = {}) {
  const headers = {};
  const bearer = token !== undefined ? token : signJwt({ sub: 'e2e-app' }, key, { expiresIn: 300 });
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  let payload;
  if (raw !== undefined) {
    payload = raw;
    headers['content-type'] = 'application/json';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['content-type'] = 'application/json';
  }
  const res = await withTimeout(fetch(`${hub.url}/api/v1${path}`, { method, headers, body: payload }), `${method} ${path}`);
  const text = await res.text();
  let parsed = text;
  try { parsed = text ? JSON.parse(text) : null; } catch { /* keep the text */ }
  return { status: res.status, body: parsed, headers: res.headers };
}

module.exports = { startApp, rest, signedBy, fromWire, toWire };

if (require.main === module) {
  const arg = (n, d) => { const i = process.argv.indexOf(n); return i >= 0 ? process.argv[i + 1] : d; };
  const key = arg('--key', process.env.SOCKETIO_HUB_ACCESS_KEY);
  startApp({
    keys: key ? [key] : undefined,
    port: Number(arg('--port', 0)),
    handlers: { event: (b) => ({ status: 200, body: b.args }) },
  }).then((app) => {
    process.stdout.write(`e2e app listening: webhook_url = "${app.url}"\n`);
  });
}

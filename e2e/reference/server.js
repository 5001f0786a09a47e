#!/usr/bin/env node
'use strict';
// Reference implementation of the hub's client-facing contract on plain Node `socket.io` 4.x.
//
// It exists to prove the e2e tests right before (and beside) the real hub: the same flags
// (`--config`, `--listen`, `--admin-listen`), the same TOML (a subset of config/src/lib.rs), the same
// ready line, the reserved events `hub:join` / `hub:leave` / `hub:to` with `[[permissions]]`,
// client JWT auth, serverless webhooks and the REST API. It is a test tool, not a product: what
// Node socket.io cannot do (bounded outbound queues, ...) it does not pretend to.

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const { Server } = require('socket.io');
const { parse: parseToml } = require('smol-toml');

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

const file = arg('--config');
const raw = file ? parseToml(fs.readFileSync(file, 'utf8')) : {};
const cfg = {
  path: raw.path || '/socket.io/',
  engine: {
    transports: ['polling', 'websocket'], ping_interval_ms: 25000, ping_timeout_ms: 20000,
    max_payload: 1000000, upgrade_timeout_ms: 10000, ...(raw.engine || {}),
  },
  socketio: { connect_timeout_ms: 45000, namespaces: ['*'], max_attachments: 16, ack_timeout_ms: 10000, ...(raw.socketio || {}) },
  cors: { allowed_origins: [], credentials: false, ...(raw.cors || {}) },
  upstream: { mode: 'none', webhook_timeout_ms: 5000, ...(raw.upstream || {}) },
  auth: { access_keys: [], client_auth: 'disabled', ...(raw.auth || {}) },
  permissions: raw.permissions || [],
  demo_page: raw.demo_page !== undefined ? raw.demo_page : true,
};
const recovery = { enabled: false, max_disconnection_ms: 120000, ...((raw.socketio || {}).recovery || {}) };
const keys = cfg.auth.access_keys.length ? cfg.auth.access_keys : [crypto.randomBytes(24).toString('hex')];

const matches = (pattern, name) => (pattern.endsWith('*') ? name.startsWith(pattern.slice(0, -1)) : pattern === name);
const nsAllowed = (name) => cfg.socketio.namespaces.some((p) => matches(p, name));
const granted = (nsp, room, kind, claims) =>
  cfg.permissions.some((g) => matches(g.namespace, nsp) && (g[kind] || []).some((p) => matches(p, room)))
  || (Array.isArray(claims && claims[`sio.${kind}`]) && claims[`sio.${kind}`].some((p) => matches(p, room)));
const CLIENT_AUD = 'socketio-hub:client';
const LINK_AUD = 'socketio-hub:link';
const API_AUD = 'socketio-hub:api';
const RESERVED_CLAIMS = ['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti'];
/** A server token (link or REST audience, or a sio.link claim) is never a client's identity. */
const isServerToken = (c) => {
  const auds = Array.isArray(c.aud) ? c.aud : [c.aud];
  return auds.includes(LINK_AUD) || auds.includes(API_AUD) || 'sio.link' in c;
};

// ---- JWT (HS256) ----
function verifyJwt(token) {
  if (typeof token !== 'string' || token.split('.').length !== 3) return { error: 'malformed token' };
  const [h, p, s] = token.split('.');
  let header;
  let claims;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url'));
    claims = JSON.parse(Buffer.from(p, 'base64url'));
  } catch {
    return { error: 'malformed token' };
  }
  if (header.alg !== 'HS256') return { error: 'unsupported token algorithm' };
  const ok = keys.some((k) => {
    const want = crypto.createHmac('sha256', k).update(`${h}.${p}`).digest();
    const got = Buffer.from(s, 'base64url');
    return got.length === want.length && crypto.timingSafeEqual(got, want);
  });
  if (!ok) return { error: 'invalid token signature' };
  if (typeof claims.exp !== 'number') return { error: 'token has no exp' };
  if (claims.exp * 1000 < Date.now()) return { error: 'token expired' };
  return { claims };
}

function signJwt(claims) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc(claims)}`;
  return `${body}.${crypto.createHmac('sha256', keys[0]).update(body).digest('base64url')}`;
}

// ---- binary <-> {"_binary": base64} ----
function toWire(v) {
  if (Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v)) return { _binary: Buffer.from(v).toString('base64') };
  if (Array.isArray(v)) return v.map(toWire);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toWire(x)]));
  return v;
}
function fromWire(v) {
  if (Array.isArray(v)) return v.map(fromWire);
  if (v && typeof v === 'object') {
    const ks = Object.keys(v);
    if (ks.length === 1 && ks[0] === '_binary' && typeof v._binary === 'string') return Buffer.from(v._binary, 'base64');
    return Object.fromEntries(ks.map((k) => [k, fromWire(v[k])]));
  }
  return v;
}

// ---- webhooks ----
async function webhook(type, body) {
  const text = JSON.stringify(body);
  const ts = String(Math.floor(Date.now() / 1000));
  const id = crypto.randomUUID();
  const source = 'socketio-hub-reference';
  const signed = `${ts}\n${id}\nsocketio.${type}\n${source}\n${text}`;
  const sig = keys.map((k) => `v1=${crypto.createHmac('sha256', k).update(signed).digest('hex')}`).join(',');
  const res = await fetch(cfg.upstream.webhook_url, {
    method: 'POST',
    body: text,
    signal: AbortSignal.timeout(cfg.upstream.webhook_timeout_ms),
    headers: {
      'content-type': 'application/json', 'ce-specversion': '1.0', 'ce-type': `socketio.${type}`,
      'ce-id': id, 'ce-source': source, 'ce-time': new Date().toISOString(), 'ce-timestamp': ts,
      'ce-signature': sig,
    },
  });
  const resText = await res.text();
  let json = null;
  if (resText) {
    try { json = JSON.parse(resText); } catch { json = undefined; }
  }
  return { status: res.status, json };
}

const webhookMode = cfg.upstream.mode === 'webhook';

// ---- servers ----
const httpServer = http.createServer((req, res) => api(req, res).catch((e) => send(res, 500, { error: String(e) })));
const corsOrigin = cfg.cors.allowed_origins.length === 0 ? true
  : cfg.cors.allowed_origins.includes('*') ? '*' : cfg.cors.allowed_origins;
const io = new Server(httpServer, {
  path: cfg.path,
  serveClient: false,
  transports: cfg.engine.transports,
  pingInterval: cfg.engine.ping_interval_ms,
  pingTimeout: cfg.engine.ping_timeout_ms,
  upgradeTimeout: cfg.engine.upgrade_timeout_ms,
  maxHttpBufferSize: cfg.engine.max_payload,
  connectTimeout: cfg.socketio.connect_timeout_ms,
  cors: { origin: corsOrigin, credentials: !!cfg.cors.credentials },
  connectionStateRecovery: recovery.enabled
    ? { maxDisconnectionDuration: recovery.max_disconnection_ms, skipMiddlewares: true } : undefined,
});

function setup(nsp) {
  nsp.use(async (socket, next) => {
    const name = socket.nsp.name;
    if (!nsAllowed(name)) return next(new Error('Invalid namespace'));
    let claims = null;
    const token = (socket.handshake.auth && socket.handshake.auth.token) || socket.handshake.query.access_token;
    if (token) {
      const v = verifyJwt(token);
      if (!v.error && isServerToken(v.claims)) v.error = 'it is a server token; clients need a client token';
      if (v.error && cfg.auth.client_auth === 'required') return next(new Error(`unauthorized: ${v.error}`));
      claims = v.claims || null;
    } else if (cfg.auth.client_auth === 'required') {
      return next(new Error('unauthorized: a token is required (query access_token or auth.token)'));
    }
    if (claims && Array.isArray(claims['sio.ns']) && !claims['sio.ns'].some((p) => matches(p, name))) {
      return next(new Error(`unauthorized: the token does not allow namespace ${name}`));
    }
    socket.data.claims = claims;
    if (!webhookMode) return next();
    const { token: _t, ...auth } = socket.handshake.auth || {};
    let r;
    try {
      r = await webhook('connect', {
        type: 'connect', namespace: name, sid: socket.id,
        handshake: {
          auth, query: socket.handshake.query, headers: socket.handshake.headers,
          address: socket.handshake.address, time: socket.handshake.time, url: socket.handshake.url, claims,
        },
      });
    } catch (e) {
      return next(new Error(`upstream unavailable: ${e.message}`));
    }
    if (r.status >= 200 && r.status < 300 && r.json !== undefined) {
      for (const room of (r.json && r.json.rooms) || []) socket.join(room);
      return next();
    }
    if (r.status >= 400 && r.status < 500 && r.json) {
      const err = new Error(r.json.message || 'rejected');
      if (r.json.data !== undefined) err.data = r.json.data;
      return next(err);
    }
    return next(new Error(`upstream unavailable: webhook answered ${r.status}`));
  });

  nsp.on('connection', (socket) => {
    const name = socket.nsp.name;
    seenNamespaces.add(name);
    if (webhookMode && !socket.recovered) {
      webhook('connected', { type: 'connected', namespace: name, sid: socket.id }).catch(() => {});
    }
    socket.on('disconnect', (reason) => {
      if (webhookMode) webhook('disconnected', { type: 'disconnected', namespace: name, sid: socket.id, reason }).catch(() => {});
    });
    socket.onAny((event, ...args) => {
      const ack = typeof args[args.length - 1] === 'function' ? args.pop() : null;
      const reply = (v) => ack && ack(v);
      if (event === 'hub:join' || event === 'hub:leave') {
        const room = args[0];
        if (typeof room !== 'string' || room === '') return reply({ ok: false, error: 'room must be a non-empty string' });
        if (!granted(name, room, 'join', socket.data.claims)) return reply({ ok: false, error: `permission denied: cannot ${event.slice(4)} room "${room}" in ${name}` });
        if (event === 'hub:join') socket.join(room); else socket.leave(room);
        return reply({ ok: true });
      }
      if (event === 'hub:to') {
        const [target, ev, ...rest] = args;
        const rooms = Array.isArray(target) ? target : [target];
        if (rooms.length === 0 || rooms.some((r) => typeof r !== 'string' || r === '') || typeof ev !== 'string') {
          return reply({ ok: false, error: 'usage: hub:to(room | rooms, event, ...args)' });
        }
        const denied = rooms.find((r) => !granted(name, r, 'emit', socket.data.claims));
        if (denied !== undefined) return reply({ ok: false, error: `permission denied: cannot emit to room "${denied}" in ${name}` });
        const op = socket.to(rooms);
        (socket.flags && socket.flags.volatile ? op.volatile : op).emit(ev, ...rest);
        return reply({ ok: true });
      }
      if (webhookMode) {
        webhook('event', { type: 'event', namespace: name, sid: socket.id, event, args: toWire(args), ack: !!ack })
          .then((r) => { if (ack && r.status === 200 && Array.isArray(r.json)) ack(...fromWire(r.json)); })
          .catch(() => {});
      }
      return undefined;
    });
  });
}
setup(io.of('/'));
setup(io.of((name, _auth, next) => next(null, name !== '/' && nsAllowed(name))));

// ---- REST ----
function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(body === undefined ? '' : JSON.stringify(body));
}

const ROUTES = {
  '/emit': ['POST', ['namespace', 'rooms', 'exceptRooms', 'sockets', 'event', 'args', 'volatile', 'ack']],
  '/sockets/join': ['POST', ['namespace', 'rooms', 'exceptRooms', 'sockets', 'join']],
  '/sockets/leave': ['POST', ['namespace', 'rooms', 'exceptRooms', 'sockets', 'leave']],
  '/sockets/disconnect': ['POST', ['namespace', 'rooms', 'exceptRooms', 'sockets', 'close']],
  '/sockets/fetch': ['POST', ['namespace', 'rooms', 'exceptRooms', 'sockets']],
  '/tokens': ['POST', ['userId', 'expiresInSeconds', 'namespaces', 'join', 'emit', 'claims']],
  '/rooms': ['GET', []],
  '/namespaces': ['GET', []],
};
const RESERVED_EVENTS = ['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener'];
const seenNamespaces = new Set(['/']);

function describe(s) {
  const h = s.handshake;
  return {
    id: s.id, namespace: s.nsp.name, rooms: [...s.rooms], recovered: !!s.recovered,
    handshake: {
      headers: h.headers, query: h.query, auth: h.auth, address: h.address, time: h.time, issued: h.issued,
      url: h.url, xdomain: h.xdomain, secure: h.secure, claims: s.data.claims || null,
    },
  };
}

async function api(req, res) {
  const url = new URL(req.url, 'http://x');
  if (req.method === 'GET' && url.pathname === '/' && cfg.demo_page) {
    res.writeHead(200, { 'content-type': 'text/html' });
    return res.end('<!doctype html><title>socketio-hub (reference)</title>');
  }
  if (!url.pathname.startsWith('/api/v1/')) return send(res, 404, { error: 'not found' });
  const auth = req.headers.authorization || '';
  const m = /^Bearer (.+)$/.exec(auth);
  if (!m) return send(res, 401, { error: 'missing bearer token' });
  const v = verifyJwt(m[1]);
  if (v.error) return send(res, 401, { error: v.error });
  const aud = v.claims.aud;
  const auds = Array.isArray(aud) ? aud : [aud];
  if (auds.includes(CLIENT_AUD)) return send(res, 401, { error: 'a client token cannot call the REST API' });
  if (auds.includes(LINK_AUD) || 'sio.link' in v.claims) return send(res, 401, { error: 'a server-link token cannot call the REST API' });
  const path = url.pathname.slice('/api/v1'.length);
  const route = ROUTES[path];
  if (!route) return send(res, 404, { error: `no route ${path}` });
  if (req.method !== route[0]) return send(res, 405, { error: `${path} takes ${route[0]}` });
  const checkNs = (ns) => {
    if (!nsAllowed(ns)) { send(res, 404, { error: `namespace ${ns} is not served` }); return null; }
    return io.of(ns);
  };
  if (path === '/rooms') {
    const nsp = checkNs(url.searchParams.get('namespace') || '/');
    if (!nsp) return undefined;
    const rooms = [...nsp.adapter.rooms].filter(([name]) => !nsp.sockets.has(name)).map(([name, set]) => ({ name, size: set.size }))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    return send(res, 200, { rooms });
  }
  if (path === '/namespaces') {
    const namespaces = [...seenNamespaces].sort().map((name) => ({ name, sockets: io.of(name).sockets.size }));
    return send(res, 200, { namespaces });
  }
  let body = '';
  for await (const chunk of req) body += chunk;
  let b;
  try { b = JSON.parse(body); } catch (e) { return send(res, 400, { error: `the request body is not JSON: ${e.message}` }); }
  if (!b || typeof b !== 'object' || Array.isArray(b)) return send(res, 400, { error: 'the request body must be a JSON object' });
  const unknown = Object.keys(b).find((k) => !route[1].includes(k));
  if (unknown !== undefined) return send(res, 400, { error: `unknown field \`${unknown}\`` });
  if (path === '/tokens') {
    if (typeof b.userId !== 'string' || !b.userId) return send(res, 400, { error: 'userId: required' });
    const reserved = Object.keys(b.claims || {}).find((k) => RESERVED_CLAIMS.includes(k) || k.startsWith('sio.'));
    if (reserved !== undefined) return send(res, 400, { error: `claims.${reserved}: is reserved` });
    const now = Math.floor(Date.now() / 1000);
    const exp = now + (b.expiresInSeconds || 3600);
    const claims = { ...(b.claims || {}), sub: b.userId, iat: now, exp, aud: CLIENT_AUD };
    if (b.namespaces) claims['sio.ns'] = b.namespaces;
    if (b.join) claims['sio.join'] = b.join;
    if (b.emit) claims['sio.emit'] = b.emit;
    return send(res, 200, { token: signJwt(claims), expiresAt: exp });
  }
  const nsp = checkNs(b.namespace || '/');
  if (!nsp) return undefined;
  const target = () => {
    const to = [...(b.rooms || []), ...(b.sockets || [])];
    let op = to.length ? nsp.to(to) : nsp;
    if ((b.exceptRooms || []).length) op = op.except(b.exceptRooms);
    return op;
  };
  const matched = async () => (await target().fetchSockets()).length;
  switch (path) {
    case '/emit': {
      if (typeof b.event !== 'string' || !b.event) return send(res, 400, { error: 'event: required' });
      if (b.event.startsWith('hub:') || RESERVED_EVENTS.includes(b.event)) return send(res, 400, { error: `event: ${b.event} is reserved` });
      const args = fromWire(b.args || []);
      if (!b.ack) {
        const delivered = await matched();
        const op = target();
        (b.volatile ? op.volatile : op).emit(b.event, ...args);
        return send(res, 202, { delivered });
      }
      const sockets = await target().fetchSockets();
      const responses = [];
      const timedOut = [];
      await Promise.all(sockets.map((s) => new Promise((resolve) => {
        s.timeout(b.ack.timeoutMs || cfg.socketio.ack_timeout_ms).emit(b.event, ...args, (err, ...r) => {
          if (err) timedOut.push(s.id); else responses.push({ sid: s.id, args: toWire(r) });
          resolve();
        });
      })));
      return send(res, 200, { responses, timedOut });
    }
    case '/sockets/join': { const n = await matched(); target().socketsJoin(b.join || []); return send(res, 200, { matched: n }); }
    case '/sockets/leave': { const n = await matched(); target().socketsLeave(b.leave || []); return send(res, 200, { matched: n }); }
    case '/sockets/disconnect': { const n = await matched(); target().disconnectSockets(!!b.close); return send(res, 200, { matched: n }); }
    case '/sockets/fetch': return send(res, 200, { sockets: (await target().fetchSockets()).map(describe) });
    default: return send(res, 404, { error: `no route ${path}` });
  }
}

const admin = http.createServer((req, res) => {
  if (req.url === '/metrics') {
    const by = { polling: 0, websocket: 0 };
    for (const c of Object.values(io.engine.clients)) by[c.transport.name] = (by[c.transport.name] || 0) + 1;
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    return res.end(`# TYPE socketio_hub_connections gauge\n${Object.entries(by).map(([t, n]) => `socketio_hub_connections{transport="${t}"} ${n}`).join('\n')}\n`);
  }
  if (req.url === '/healthz' || req.url === '/readyz') { res.writeHead(200); return res.end('ok'); }
  res.writeHead(404);
  return res.end();
});

const hostPort = (s) => { const i = s.lastIndexOf(':'); return [s.slice(0, i), Number(s.slice(i + 1))]; };
const [host, port] = hostPort(arg('--listen', '0.0.0.0:3000'));
const [ahost, aport] = hostPort(arg('--admin-listen', '0.0.0.0:9090'));
httpServer.listen(port, host, () => {
  admin.listen(aport, ahost, () => {
    const a = httpServer.address();
    const b = admin.address();
    process.stdout.write(`socketio-hub ready clients=${a.address}:${a.port} admin=${b.address}:${b.port}\n`);
  });
});

function shutdown() {
  io.close();
  admin.close();
  setTimeout(() => process.exit(0), 200).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

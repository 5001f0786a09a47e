'use strict';
// The chaos suite's "Service": a round-robin HTTP/WebSocket balancer in its own process (so the
// proxying of ~1,000 clients does not share an event loop with the orchestrator). Like a
// Kubernetes Service over kube-proxy it has no session affinity: every HTTP request and every
// WebSocket upgrade goes to the next endpoint. An endpoint is used while
//   - its `/readyz` answers 200 (probed every PROBE_MS, as a readiness probe), and
//   - the orchestrator has not removed it (what the endpoints controller does when a pod starts
//     terminating — before its preStop hook ends).
// A connection refused by an endpoint is tried on the next one (nothing was sent yet).
//
// IPC (parent → child): { type: 'endpoints', list: [{ name, clients, admin }] },
// { type: 'remove', name } / { type: 'restore', name }. Child → parent: { type: 'listening', url }.

const http = require('node:http');
const net = require('node:net');

const PROBE_MS = 250;
let endpoints = [];
const ready = new Map();
const removed = new Set();
const agents = new Map();
let next = 0;
const stats = { requests: 0, upgrades: 0, refused: 0, failed: 0 };

function usable() {
  return endpoints.filter((e) => ready.get(e.name) && !removed.has(e.name));
}

function agent(e) {
  if (!agents.has(e.clients)) agents.set(e.clients, new http.Agent({ keepAlive: true }));
  return agents.get(e.clients);
}

/** The endpoints to try, starting at the next one in turn. */
function order() {
  const list = usable();
  if (!list.length) return [];
  const start = next++ % list.length;
  return list.slice(start).concat(list.slice(0, start));
}

async function probe() {
  await Promise.all(endpoints.map(async (e) => {
    try {
      const r = await fetch(`http://${e.admin}/readyz`, { signal: AbortSignal.timeout(PROBE_MS * 2) });
      await r.text();
      ready.set(e.name, r.status === 200);
    } catch {
      ready.set(e.name, false);
    }
  }));
}

function proxyRequest(req, res) {
  stats.requests++;
  const body = [];
  req.on('data', (c) => body.push(c));
  req.on('end', () => {
    const tries = order();
    const attempt = (k) => {
      const e = tries[k];
      if (!e) { stats.failed++; res.writeHead(503); res.end('no endpoint'); return; }
      const [host, port] = e.clients.split(':');
      const up = http.request({ host, port: Number(port), method: req.method, path: req.url, headers: req.headers, agent: agent(e) }, (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
        r.on('error', () => res.destroy());
      });
      up.on('error', (err) => {
        if (err.code === 'ECONNREFUSED' && !up.reusedSocket) { stats.refused++; attempt(k + 1); return; }
        stats.failed++;
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
      up.end(Buffer.concat(body));
    };
    attempt(0);
  });
  res.on('close', () => req.destroy());
}

function proxyUpgrade(req, client, head) {
  stats.upgrades++;
  const tries = order();
  const attempt = (k) => {
    const e = tries[k];
    if (!e) { stats.failed++; client.destroy(); return; }
    const [host, port] = e.clients.split(':');
    let connected = false;
    const upstream = net.connect(Number(port), host, () => {
      connected = true;
      let raw = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) raw += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      upstream.write(`${raw}\r\n`);
      if (head && head.length) upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    const done = () => { client.destroy(); upstream.destroy(); };
    upstream.on('error', (err) => {
      if (!connected && err.code === 'ECONNREFUSED') { stats.refused++; attempt(k + 1); return; }
      done();
    });
    upstream.on('close', () => { if (connected) done(); });
    client.on('error', done);
    client.on('close', () => upstream.destroy());
  };
  attempt(0);
}

const server = http.createServer(proxyRequest);
server.on('upgrade', proxyUpgrade);
server.keepAliveTimeout = 60000;

process.on('message', (m) => {
  if (m.type === 'endpoints') {
    endpoints = m.list;
    probe();
  } else if (m.type === 'remove') {
    removed.add(m.name);
  } else if (m.type === 'restore') {
    removed.delete(m.name);
  } else if (m.type === 'stats') {
    process.send({ type: 'stats', stats, usable: usable().map((e) => e.name) });
  }
});
process.on('disconnect', () => process.exit(0));

setInterval(probe, PROBE_MS).unref();
server.listen(0, process.env.BALANCER_HOST || '127.0.0.1', () => {
  const a = server.address();
  process.send({ type: 'listening', url: `http://${a.address}:${a.port}` });
});

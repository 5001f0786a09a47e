'use strict';
// Multi-node clusters on loopback for the cluster suites: node i listens on 127.0.0.i, gossip and
// mesh use ports picked free at start (gossip must be known in advance: it is the seed list),
// clients on port 0. Also a tiny round-robin TCP proxy, so consecutive requests of one client
// land on different nodes (what a load balancer without session affinity does).
// Every cluster runs authenticated: the nodes read CLUSTER_SECRET from a file (`secret_file`),
// as pods read it from their mounted Secret.

const dgram = require('node:dgram');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { startHub } = require('../harness/hub');

/** The secret every test cluster shares (32+ bytes, as the hub requires). */
const CLUSTER_SECRET = 'e2e-cluster-secret-0123456789abcdefghijklmnop';

/** A file holding `secret` followed by a newline (as `echo` or a mounted Secret writes it). */
function secretFile(secret) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sioh-e2e-secret-'));
  const file = path.join(dir, 'cluster-secret');
  fs.writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return file;
}

let sharedSecretFile;

/** A UDP and TCP port free on `host` right now (bound and released). */
async function freePort(host) {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, host, () => { const p = s.address().port; s.close(() => resolve(p)); });
    });
    const udpFree = await new Promise((resolve) => {
      const u = dgram.createSocket('udp4');
      u.once('error', () => resolve(false));
      u.bind(port, host, () => u.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
}

function nodeConfig(spec, seeds, extra) {
  const { cluster = {}, ...rest } = extra;
  sharedSecretFile = sharedSecretFile || secretFile(CLUSTER_SECRET);
  return {
    cluster: {
      secret_file: sharedSecretFile,
      node_name: spec.name,
      seeds,
      gossip_listen: `${spec.host}:${spec.gossip}`,
      mesh_listen: `${spec.host}:0`,
      gossip_interval_ms: 100,
      request_timeout_ms: 2000,
      ...cluster,
    },
    permissions: [{ namespace: '/', join: ['*'], emit: ['*'] }],
    ...rest,
  };
}

/** Start one node of `spec` ({ name, host, gossip }) with `seeds`; `extra` as for startCluster. */
function startNode(spec, seeds, extra = {}) {
  return startHub(nodeConfig(spec, seeds, extra), { listen: `${spec.host}:0` });
}

/** Start `n` nodes (127.0.0.1..n) that form one cluster; resolves once all see each other. */
async function startCluster(n = 3, extra = {}) {
  const specs = [];
  for (let i = 1; i <= n; i++) {
    const host = `127.0.0.${i}`;
    specs.push({ name: `n${i}`, host, gossip: await freePort(host) });
  }
  const seeds = specs.map((s) => `${s.host}:${s.gossip}`);
  const nodes = await Promise.all(
    specs.map((s) => startHub(nodeConfig(s, seeds, extra), { listen: `${s.host}:0` })),
  );
  const cluster = { specs, seeds, nodes, extra };
  await waitPeers(nodes, n - 1);
  return cluster;
}

/** Start node `i` (0-based) again after it died, with a new generation; same gossip port. */
async function restartNode(cluster, i) {
  const s = cluster.specs[i];
  const deadline = Date.now() + 10000;
  for (;;) {
    try {
      cluster.nodes[i] = await startHub(nodeConfig(s, cluster.seeds, cluster.extra), { listen: `${s.host}:0` });
      return cluster.nodes[i];
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await sleep(200);
    }
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The `/cluster` view of a node. */
async function view(node) {
  const r = await fetch(`${node.adminUrl}/cluster`);
  if (!r.ok) throw new Error(`/cluster answered ${r.status}`);
  return r.json();
}

/** Poll until `pred()` holds (a deadline, never a bare sleep). */
async function until(pred, what, ms = 15000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await pred();
      if (last) return last;
    } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last})`);
    await sleep(50);
  }
}

/** Wait until every node sees `count` linked peers. */
function waitPeers(nodes, count) {
  return until(async () => {
    const views = await Promise.all(nodes.map(view));
    return views.every((v) => v.peers.length === count && v.peers.every((p) => p.linked && p.ready));
  }, `every node to see ${count} ready peers`);
}

/** Wait until every other node's gossip shows `room` (namespace `/`) on each node in `on`. */
function waitRoom(cluster, room, on, ns = '/') {
  const names = on.map((i) => cluster.specs[i].name);
  return until(async () => {
    const views = await Promise.all(cluster.nodes.map(view));
    return views.every((v) => names.every((name) => {
      if (v.node.startsWith(`${name}/`)) return true;
      const p = v.peers.find((x) => x.node.startsWith(`${name}/`));
      return p && (p.rooms[ns] || []).includes(room);
    }));
  }, `room ${room} gossiped from ${names}`);
}

/** Wait until no node's gossip shows `room` on node `i`. */
function waitRoomGone(cluster, room, i, ns = '/') {
  const name = cluster.specs[i].name;
  return until(async () => {
    const views = await Promise.all(cluster.nodes.filter((_, j) => j !== i).map(view));
    return views.every((v) => {
      const p = v.peers.find((x) => x.node.startsWith(`${name}/`));
      return !p || !(p.rooms[ns] || []).includes(room);
    });
  }, `room ${room} of ${name} to leave routing`);
}

/**
 * A round-robin HTTP proxy over `targets` ("host:port", or a function returning them): every
 * request — and every WebSocket upgrade — goes to the next target on a new connection, like a
 * load balancer without session affinity. `picks` records where each request went.
 */
async function roundRobinProxy(targets) {
  let next = 0;
  const picks = [];
  const sockets = new Set();
  const pick = () => {
    const list = typeof targets === 'function' ? targets() : targets;
    const t = list[next++ % list.length];
    picks.push(t);
    const [host, port] = t.split(':');
    return { host, port: Number(port) };
  };
  const server = http.createServer((req, res) => {
    const { host, port } = pick();
    const up = http.request({ host, port, method: req.method, path: req.url, headers: req.headers, agent: false }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on('error', () => { if (!res.headersSent) res.writeHead(502); res.end(); });
    req.pipe(up);
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  server.on('upgrade', (req, client, head) => {
    const { host, port } = pick();
    const upstream = net.connect(port, host, () => {
      let raw = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) raw += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      upstream.write(`${raw}\r\n`);
      if (head && head.length) upstream.write(head);
      client.pipe(upstream); upstream.pipe(client);
    });
    sockets.add(upstream);
    const done = () => { client.destroy(); upstream.destroy(); sockets.delete(upstream); };
    client.on('error', done); upstream.on('error', done);
    client.on('close', done); upstream.on('close', done);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    picks,
    close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

async function stopCluster(cluster) {
  await Promise.all(cluster.nodes.map((n) => n.close()));
}

module.exports = {
  CLUSTER_SECRET, secretFile, freePort, startNode,
  startCluster, restartNode, stopCluster, view, until, waitPeers, waitRoom, waitRoomGone, roundRobinProxy, sleep,
};

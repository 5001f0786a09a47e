'use strict';
// Cluster benchmark: broadcast latency and deliveries/s with receivers on one node vs spread
// over three nodes (127.0.0.1-3), and gossip convergence after a join and after a SIGKILL.
//
// Receivers are raw Engine.IO WebSocket clients (the `ws` package, no socket.io-client
// overhead) in this process; the sender is one more client on node 1 using `hub:to`, so the
// hub path measured is client → hub (→ mesh → hub) → clients. Latency is measured with one
// clock (this process), from the send to each delivery.
//
// usage: node bench/cluster/bench.js [--receivers 900] [--broadcasts 2000] [--window 16]
// env: HUB_BIN (default target/release/socketio-hub)

const path = require('node:path');
const REPO = path.resolve(__dirname, '..', '..');
process.env.HUB_BIN = process.env.HUB_BIN || path.join(REPO, 'target', 'release', 'socketio-hub');
const WebSocket = require(path.join(REPO, 'e2e', 'node_modules', 'ws'));
const { startHub } = require(path.join(REPO, 'e2e', 'harness', 'hub'));
const h = require(path.join(REPO, 'e2e', 'cluster', 'harness'));

const arg = (name, d) => { const i = process.argv.indexOf(`--${name}`); return i >= 0 ? Number(process.argv[i + 1]) : d; };
const RECEIVERS = arg('receivers', 900);
const BROADCASTS = arg('broadcasts', 2000);
const WINDOW = arg('window', 16);
const now = () => Number(process.hrtime.bigint() / 1000n); // µs

function client(addr, onEvent) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${addr}/socket.io/?EIO=4&transport=websocket`);
    ws.on('error', reject);
    ws.on('message', (data) => {
      const t = data.toString();
      if (t === '2') return ws.send('3');
      if (t.startsWith('0{')) return ws.send('40');
      if (t.startsWith('40')) return resolve(ws);
      if (t.startsWith('42')) onEvent(t);
    });
  });
}

async function join(ws, room) {
  ws.send(`421["hub:join","${room}"]`);
  await new Promise((r) => {
    const f = (d) => { if (d.toString().startsWith('431')) { ws.off('message', f); r(); } };
    ws.on('message', f);
  });
}

function percentile(sorted, p) { return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]; }

async function fanout(addrs, label, cluster) {
  const lat = [];
  let delivered = 0;
  let done = 0;
  let sent = 0;
  const perSeq = new Uint32Array(BROADCASTS);
  let sender = null;
  let finished = () => {};
  const pump = () => {
    while (sent < BROADCASTS && sent - done < WINDOW) {
      sender.send(`42["hub:to","bench","b",${sent},${now()}]`);
      sent++;
    }
  };
  const onEvent = (t) => {
    // 42["b",seq,sentMicros]
    const parts = t.slice(7, -1).split(',');
    const seq = Number(parts[0]);
    lat.push(now() - Number(parts[1]));
    delivered++;
    if (++perSeq[seq] === RECEIVERS) {
      done++;
      if (done === BROADCASTS) finished(); else pump();
    }
  };
  const socks = [];
  for (let i = 0; i < RECEIVERS; i++) {
    const ws = await client(addrs[i % addrs.length], onEvent);
    await join(ws, 'bench');
    socks.push(ws);
  }
  if (cluster) await h.waitRoom(cluster, 'bench', addrs.map((_, i) => i));
  sender = await client(addrs[0], () => {});
  const start = now();
  await new Promise((resolve) => {
    const guard = setTimeout(resolve, 120000);
    finished = () => { clearTimeout(guard); resolve(); };
    pump();
  });
  const secs = (now() - start) / 1e6;
  lat.sort((a, b) => a - b);
  for (const s of [...socks, sender]) s.terminate();
  const r = {
    label,
    receivers: RECEIVERS,
    broadcasts: BROADCASTS,
    window: WINDOW,
    delivered,
    expected: RECEIVERS * BROADCASTS,
    deliveries_per_s: Math.round(delivered / secs),
    p50_ms: percentile(lat, 0.5) / 1000,
    p99_ms: percentile(lat, 0.99) / 1000,
    max_ms: lat[lat.length - 1] / 1000,
  };
  console.log(JSON.stringify(r));
  return r;
}

async function convergence() {
  const cluster = await h.startCluster(3);
  try {
    // Join: a 4th node on 127.0.0.4; time until all four see three peers.
    const t0 = Date.now();
    const spec = { name: 'n4', host: '127.0.0.4', gossip: await freeGossip('127.0.0.4') };
    cluster.specs.push(spec);
    const n4 = await h.restartNode(cluster, 3);
    const started = Date.now();
    await h.waitPeers(cluster.nodes, 3);
    const joinMs = Date.now() - started;
    // Failure: SIGKILL n4; time until the others drop it.
    const killed = Date.now();
    await n4.kill();
    await h.until(async () => (await Promise.all(cluster.nodes.slice(0, 3).map(h.view))).every((v) => v.peers.length === 2), 'failure detection', 30000);
    const failMs = Date.now() - killed;
    console.log(JSON.stringify({ label: 'gossip convergence (gossip_interval_ms=100)', join_ms: joinMs, join_incl_process_start_ms: Date.now() - t0 - failMs, failure_detection_ms: failMs }));
    // Room-set weight: one client joins ROOMS rooms on node 1; time until both peers list them.
    const ROOMS = arg('rooms', 5000);
    const ws = await client(cluster.nodes[0].clients, () => {});
    const t1 = Date.now();
    for (let i = 0; i < ROOMS; i += 64) {
      const batch = [];
      for (let j = i; j < Math.min(ROOMS, i + 64); j++) batch.push(`room-${j}`);
      ws.send(`421["hub:join",${JSON.stringify(batch)}]`);
    }
    await h.until(async () => (await Promise.all(cluster.nodes.slice(1, 3).map(h.view))).every((v) => {
      const p = v.peers.find((x) => x.node.startsWith('n1/'));
      return p && (p.rooms['/'] || []).length >= ROOMS;
    }), `${ROOMS} rooms gossiped`, 60000);
    console.log(JSON.stringify({ label: `room set of ${ROOMS} rooms gossiped to both peers`, ms: Date.now() - t1 }));
    ws.terminate();
  } finally {
    await h.stopCluster(cluster);
  }
}

async function freeGossip(host) {
  const dgram = require('node:dgram');
  return new Promise((resolve) => {
    const u = dgram.createSocket('udp4');
    u.bind(0, host, () => { const p = u.address().port; u.close(() => resolve(p)); });
  });
}

(async () => {
  const single = await startHub({ permissions: [{ namespace: '/', join: ['*'], emit: ['*'] }] }, { listen: '127.0.0.1:0' });
  try {
    await fanout([single.clients], 'single node', null);
  } finally {
    await single.close();
  }
  const cluster = await h.startCluster(3);
  try {
    await fanout(cluster.nodes.map((n) => n.clients), '3 nodes (receivers spread, sender on node 1)', cluster);
  } finally {
    await h.stopCluster(cluster);
  }
  await convergence();
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });

'use strict';
// Scale: N Socket.IO WebSocket connections held by a local cluster of K nodes (127.0.0.1..K),
// opened by K generator processes (one per node, each under the 20,000-file limit), then one
// REST emit to the whole namespace through node 1. Reports the hubs' total RSS per connection
// and the time from the REST call until the last client received the event.
//
// usage: node bench/cluster/scale.js [--connections 100000] [--nodes 6]
// env: HUB_BIN (default target/release/socketio-hub)

const path = require('node:path');
const fs = require('node:fs');
const { fork } = require('node:child_process');
const { performance } = require('node:perf_hooks');
const REPO = path.resolve(__dirname, '..', '..');

const arg = (name, d) => { const i = process.argv.indexOf(`--${name}`); return i >= 0 ? Number(process.argv[i + 1]) : d; };
const nowAbs = () => performance.timeOrigin + performance.now();

if (process.argv[2] === '--worker') {
  const WebSocket = require(path.join(REPO, 'e2e', 'node_modules', 'ws'));
  const [addr, count] = [process.argv[3], Number(process.argv[4])];
  let connected = 0; let received = 0; let pending = 0; let opened = 0; let failed = 0;
  const conns = [];
  const openOne = () => {
    pending++; opened++;
    const ws = new WebSocket(`ws://${addr}/socket.io/?EIO=4&transport=websocket`, { perMessageDeflate: false });
    conns.push(ws);
    ws.on('error', () => { failed++; });
    ws.on('message', (data) => {
      const t = data.toString();
      if (t === '2') return ws.send('3');
      if (t.startsWith('0{')) return ws.send('40');
      if (t.startsWith('40')) {
        connected++; pending--;
        if (connected === count) process.send({ type: 'ready', failed });
        else if (opened < count) openOne();
        return;
      }
      if (t.startsWith('42["all"')) {
        received++;
        if (received === connected) process.send({ type: 'done', at: nowAbs(), received });
      }
    });
  };
  for (let i = 0; i < Math.min(200, count); i++) openOne();
  process.on('message', (m) => { if (m === 'exit') { for (const c of conns) c.terminate(); process.exit(0); } });
  return;
}

process.env.HUB_BIN = process.env.HUB_BIN || path.join(REPO, 'target', 'release', 'socketio-hub');
const h = require(path.join(REPO, 'e2e', 'cluster', 'harness'));
const { ACCESS_KEY } = require(path.join(REPO, 'e2e', 'harness', 'hub'));
const { rest } = require(path.join(REPO, 'e2e', 'app', 'app'));

const rssKib = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

(async () => {
  const N = arg('connections', 100000);
  const K = arg('nodes', 6);
  const cluster = await h.startCluster(K, { engine: { max_sessions: 100000, ping_interval_ms: 60000, ping_timeout_ms: 60000 } });
  const workers = [];
  try {
    const before = cluster.nodes.reduce((s, n) => s + rssKib(n.child.pid), 0);
    const t0 = Date.now();
    const ready = cluster.nodes.map((n, i) => {
      const count = Math.floor(N / K) + (i < N % K ? 1 : 0);
      const w = fork(__filename, ['--worker', n.clients, String(count)], { stdio: 'inherit' });
      workers.push(w);
      return new Promise((resolve) => w.on('message', (m) => { if (m.type === 'ready') resolve(m); }));
    });
    await Promise.all(ready);
    const openSecs = (Date.now() - t0) / 1000;
    await h.sleep(3000);
    const after = cluster.nodes.reduce((s, n) => s + rssKib(n.child.pid), 0);
    const done = workers.map((w) => new Promise((resolve) => w.on('message', (m) => { if (m.type === 'done') resolve(m); })));
    const sent = nowAbs();
    const r = await rest(cluster.nodes[0], 'POST', '/emit', { event: 'all', args: [{ hello: 'everyone' }] }, { key: ACCESS_KEY });
    if (r.status !== 202) throw new Error(`emit answered ${r.status}: ${JSON.stringify(r.body)}`);
    const results = await Promise.all(done);
    const last = Math.max(...results.map((m) => m.at));
    console.log(JSON.stringify({
      label: `${N} connections over ${K} nodes`,
      open_secs: openSecs,
      hub_rss_total_mib: Math.round(after / 1024),
      rss_per_connection_kib: Number(((after - before) / N).toFixed(2)),
      broadcast_to_all_ms: Number((last - sent).toFixed(1)),
      received: results.reduce((s, m) => s + m.received, 0),
    }));
  } finally {
    for (const w of workers) w.send('exit');
    await h.stopCluster(cluster);
  }
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });

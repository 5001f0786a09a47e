'use strict';
// Echo-with-ack round trip, client → hub → app → hub → client, against the same app serving its
// clients directly, in the same run: N socket.io-client WebSocket clients emit `echo` with an ack
// at a fixed total rate; the time from emit to ack is recorded per message.
//
// A third setup puts the clients on another node than the app's link (a 2-node cluster on
// 127.0.0.1/127.0.0.2: client → node 2 → mesh → node 1 → app, and back), so the figure shows
// what the relay adds. CPU is read from /proc for the hub processes and the app (µs per echo).
//
//   node bench/sdk/echo.js [--rate 5000] [--seconds 10] [--clients 50] [--warmup 2]
//   env HUB_BIN (default target/release/socketio-hub; a release build), E2E node_modules used.
// Prints one JSON line per setup and a Markdown table.

const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');
const { spawn } = require('node:child_process');

const REPO = path.resolve(__dirname, '..', '..');
const { io } = require(path.join(REPO, 'e2e', 'node_modules', 'socket.io-client'));

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const RATE = arg('rate', 5000);
const SECONDS = arg('seconds', 10);
const CLIENTS = arg('clients', 50);
const WARMUP = arg('warmup', 2);
const HUB_BIN = process.env.HUB_BIN || path.join(process.env.CARGO_TARGET_DIR || path.join(REPO, 'target'), 'release', 'socketio-hub');
const KEY = 'bench-access-key-0123456789abcdefghijklmnop';
const children = [];
process.on('exit', () => { for (const c of children) try { c.kill('SIGKILL'); } catch { /* gone */ } });

function spawnUntil(cmd, args, env, re) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  return new Promise((resolve, reject) => {
    const onData = (c) => {
      out += c;
      const m = re.exec(out);
      if (m) resolve({ child, m });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', () => reject(new Error(`${cmd} exited:\n${out}`)));
  });
}

const APP = path.join(REPO, 'e2e', 'sdk', 'app.js');

async function direct() {
  const { child, m } = await spawnUntil(process.execPath, [APP], { APP_NAME: 'direct', SOCKETIO_HUB_CONNECTION_STRING: '' }, /app ready port=(\d+)/);
  return { url: `http://127.0.0.1:${m[1]}`, pids: [child.pid], stop: () => child.kill('SIGKILL') };
}

/** CPU seconds (user + system) used so far by `pid`. */
function cpuSeconds(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch { return 0; }
}

const { freePort } = require(path.join(REPO, 'e2e', 'cluster', 'harness'));

async function viaCluster() {
  const hosts = ['127.0.0.1', '127.0.0.2'];
  const gossip = await Promise.all(hosts.map(freePort));
  const seeds = hosts.map((h, i) => `"${h}:${gossip[i]}"`).join(', ');
  const nodes = [];
  for (const [i, h] of hosts.entries()) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdk-bench-'));
    const conf = path.join(dir, 'hub.toml');
    fs.writeFileSync(conf, `demo_page = false\n[upstream]\nmode = "link"\n[auth]\naccess_keys = ["${KEY}"]\n[log]\nlevel = "warn"\n`
      + `[cluster]\nsecret = "bench-cluster-secret-0123456789abcdefghij"\nnode_name = "b${i + 1}"\nseeds = [${seeds}]\ngossip_listen = "${h}:${gossip[i]}"\nmesh_listen = "${h}:0"\n`);
    nodes.push(await spawnUntil(HUB_BIN, ['--config', conf, '--listen', `${h}:0`, '--admin-listen', `${h}:0`], {}, /socketio-hub ready clients=(\S+) admin=(\S+)/));
  }
  const app = await spawnUntil(process.execPath, [APP], { APP_NAME: 'linked', SOCKETIO_HUB_CONNECTION_STRING: `Endpoint=http://${nodes[0].m[1]};AccessKey=${KEY};` }, /server link up/);
  // Node 2 binds its sessions to the app on node 1 once gossip carries it.
  const admin2 = `http://${nodes[1].m[2]}`;
  for (let i = 0; i < 200; i++) {
    const v = await (await fetch(`${admin2}/cluster`)).json();
    if (v.peers.some((p) => (p.apps || []).length)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `http://${nodes[1].m[1]}`,
    pids: [...nodes.map((n) => n.child.pid), app.child.pid],
    stop: () => { app.child.kill('SIGKILL'); for (const n of nodes) n.child.kill('SIGKILL'); },
  };
}

async function viaHub() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdk-bench-'));
  const conf = path.join(dir, 'hub.toml');
  fs.writeFileSync(conf, `demo_page = false\n[upstream]\nmode = "link"\n[auth]\naccess_keys = ["${KEY}"]\n[log]\nlevel = "warn"\n`);
  const hub = await spawnUntil(HUB_BIN, ['--config', conf, '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'], {}, /socketio-hub ready clients=(\S+) admin=(\S+)/);
  const url = `http://${hub.m[1]}`;
  const app = await spawnUntil(process.execPath, [APP], { APP_NAME: 'linked', SOCKETIO_HUB_CONNECTION_STRING: `Endpoint=${url};AccessKey=${KEY};` }, /server link up/);
  return { url, pids: [hub.child.pid, app.child.pid], stop: () => { app.child.kill('SIGKILL'); hub.child.kill('SIGKILL'); } };
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function measure(name, setup) {
  const target = await setup();
  const sockets = await Promise.all(Array.from({ length: CLIENTS }, () => new Promise((resolve, reject) => {
    const s = io(target.url, { transports: ['websocket'], reconnection: false, forceNew: true });
    s.once('welcome', () => resolve(s));
    s.once('connect_error', reject);
  })));
  const samples = [];
  let sent = 0;
  let lost = 0;
  let recording = false;
  let emitted = 0;
  let next = 0;
  const started = process.hrtime.bigint();
  const total = (WARMUP + SECONDS) * 1000;
  let cpu0 = null;
  await new Promise((resolve) => {
    const tick = () => {
      const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
      if (elapsedMs >= total) return resolve();
      recording = elapsedMs >= WARMUP * 1000;
      if (recording && cpu0 === null) cpu0 = target.pids.map(cpuSeconds);
      // Emit what the schedule says is due by now (timers fire about every millisecond).
      const due = Math.floor((elapsedMs * RATE) / 1000);
      while (emitted < due) {
        emitted++;
        const s = sockets[next++ % sockets.length];
        const t0 = process.hrtime.bigint();
        const rec = recording;
        if (rec) sent++;
        s.timeout(5000).emit('echo', 'x', (err) => {
          if (!rec) return;
          if (err) lost++;
          else samples.push(Number(process.hrtime.bigint() - t0) / 1e3);
        });
      }
      setTimeout(tick, 1);
    };
    tick();
  });
  const cpu1 = target.pids.map(cpuSeconds);
  await new Promise((r) => setTimeout(r, 1000)); // let the last acks arrive
  for (const s of sockets) s.disconnect();
  target.stop();
  samples.sort((a, b) => a - b);
  const result = {
    setup: name,
    rate: RATE,
    seconds: SECONDS,
    clients: CLIENTS,
    sent,
    acked: samples.length,
    lost,
    achieved_rate: Math.round(samples.length / SECONDS),
    p50_us: Math.round(percentile(samples, 50)),
    p90_us: Math.round(percentile(samples, 90)),
    p99_us: Math.round(percentile(samples, 99)),
    max_us: Math.round(samples[samples.length - 1]),
    // Server-side CPU (every hub process and the app) per acked echo, in µs.
    cpu_us_per_echo: Math.round((cpu1.reduce((a, b) => a + b, 0) - (cpu0 || cpu1).reduce((a, b) => a + b, 0)) * 1e6 / Math.max(1, samples.length)),
  };
  console.log(JSON.stringify(result));
  return result;
}

(async () => {
  if (!fs.existsSync(HUB_BIN)) throw new Error(`no hub binary at ${HUB_BIN}: cargo build --release -p socketio-hub, or set HUB_BIN`);
  const a = await measure('app serves clients directly', direct);
  const b = await measure('client → hub → app (server link + SDK)', viaHub);
  const c = await measure('client → node 2 → node 1 → app (2-node cluster)', viaCluster);
  console.log('\n| setup | rate msg/s | acked | p50 µs | p90 µs | p99 µs | max µs | server CPU µs/echo |\n| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of [a, b, c]) console.log(`| ${r.setup} | ${r.achieved_rate} | ${r.acked}/${r.sent} | ${r.p50_us} | ${r.p90_us} | ${r.p99_us} | ${r.max_us} | ${r.cpu_us_per_echo} |`);
  console.log(`\nadded by the hub: p50 +${b.p50_us - a.p50_us} µs, p99 +${b.p99_us - a.p99_us} µs`);
  console.log(`added by another node: p50 +${c.p50_us - b.p50_us} µs, p99 +${c.p99_us - b.p99_us} µs`);
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });

'use strict';
// Does one flooding client slow the others down? Well-behaved socket.io-client WebSocket clients
// send acked `hub:to` commands at a fixed total rate (each to its neighbour's room); the time
// from emit to ack is recorded per message. The same run is repeated three times against a
// freshly started hub: alone, with a flooder and the limits off, and with the flooder and
// `[limits]` on. The flooder (a separate process, flooder.js) writes `hub:to` packets as fast
// as its socket takes them and reconnects at once whenever the hub closes it.
//
// Every client sends `x-forwarded-for: 10.0.<n>.<n>` and the hub trusts that header when the
// limits are on, as a hub behind a proxy does; the flooder uses its own address.
//
//   node bench/flood/flood.js [--rate 2000] [--seconds 10] [--clients 50] [--warmup 2]
//   env SETUPS=1,2,3 (which of the three), HUB_BIN (default target/release/socketio-hub; a release build), HUB_CPU / GEN_CPU
//   (taskset cores for the hub and for the clients + flooder, default 0 / 1), SCHED=rr|normal
//   (default rr as root: hub and clients under `chrt -r 1`, as bench/run.sh, so the flooder,
//   at normal priority on the clients' core, only gets the CPU they leave); e2e node_modules.
// Prints one JSON line per setup and a Markdown table.

const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');
const { spawn, execFileSync } = require('node:child_process');

const REPO = path.resolve(__dirname, '..', '..');
const { io } = require(path.join(REPO, 'e2e', 'node_modules', 'socket.io-client'));

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const RATE = arg('rate', 2000);
const SECONDS = arg('seconds', 10);
const CLIENTS = arg('clients', 50);
const WARMUP = arg('warmup', 2);
const HUB_BIN = process.env.HUB_BIN || path.join(process.env.CARGO_TARGET_DIR || path.join(REPO, 'target'), 'release', 'socketio-hub');
const HUB_CPU = process.env.HUB_CPU || '0';
// As bench/run.sh: as root, the hub and the measuring clients run SCHED_RR (other work on a
// shared machine then cannot delay their wake-ups); the flooder never does.
const RT = process.env.SCHED ? process.env.SCHED === 'rr' : process.getuid && process.getuid() === 0;
const PRIO = RT ? ['chrt', '-r', '1'] : [];
const GEN_CPU = process.env.GEN_CPU || '1';
const LIMITS = {
  packets_per_second: 100, // 2.5× what a well-behaved client sends at the default rate (40/s)
  bytes_per_second: 1000000, // 1 MB/s per connection
  handshakes_per_second_per_ip: 1,
  connections_per_ip: 4,
  trusted_proxy_header: '"x-forwarded-for"',
};
const children = [];
process.on('exit', () => { for (const c of children) try { c.kill('SIGKILL'); } catch { /* gone */ } });

function spawnUntil(cmd, args, re) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  return new Promise((resolve, reject) => {
    const onData = (c) => {
      out += c;
      const m = re.exec(out);
      if (m) resolve({ child, m, output: () => out });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', () => reject(new Error(`${cmd} exited:\n${out}`)));
  });
}

async function startHub(limits) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flood-bench-'));
  const conf = path.join(dir, 'hub.toml');
  let toml = 'demo_page = false\n[log]\nlevel = "warn"\n[[permissions]]\nnamespace = "/"\njoin = ["*"]\nemit = ["*"]\n';
  if (limits) toml += `[limits]\n${Object.entries(limits).map(([k, v]) => `${k} = ${v}`).join('\n')}\n`;
  fs.writeFileSync(conf, toml);
  const [cmd, ...pre] = [...PRIO, 'taskset'];
  const hub = await spawnUntil(cmd, [...pre, '-c', HUB_CPU, HUB_BIN, '--config', conf, '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'], /socketio-hub ready clients=(\S+) admin=(\S+)/);
  return { url: `http://${hub.m[1]}`, admin: `http://${hub.m[2]}`, pid: hub.child.pid, stop: () => hub.child.kill('SIGKILL') };
}

/** CPU seconds (user + system) the process `pid` has used so far. */
function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function metric(admin, prefix) {
  const text = await (await fetch(`${admin}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(prefix)).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

async function measure(name, { flood, limits }) {
  const hub = await startHub(limits);
  const sockets = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => new Promise((resolve, reject) => {
    const s = io(hub.url, {
      transports: ['websocket'], reconnection: false, forceNew: true,
      extraHeaders: { 'x-forwarded-for': `10.0.${i >> 8}.${i & 255}` },
    });
    s.once('connect', () => s.timeout(5000).emit('hub:join', `r-${i}`, (err) => (err ? reject(err) : resolve(s))));
    s.once('connect_error', reject);
  })));
  let flooder = null;
  if (flood) {
    // On the clients' core at normal priority: with the clients under SCHED_RR it takes all the
    // CPU they leave but cannot delay them (what they measure is the hub, not a contended
    // generator). `chrt -o 0`: children inherit this process's SCHED_RR otherwise.
    flooder = await spawnUntil('chrt', ['-o', '0', 'taskset', '-c', GEN_CPU, process.execPath, path.join(__dirname, 'flooder.js'), hub.url], /flooder ready/);
  }
  const cpuBefore = cpuSeconds(hub.pid);
  const samples = [];
  let sent = 0;
  let lost = 0;
  let emitted = 0;
  const started = process.hrtime.bigint();
  const total = (WARMUP + SECONDS) * 1000;
  await new Promise((resolve) => {
    const tick = () => {
      const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
      if (elapsedMs >= total) return resolve();
      const recording = elapsedMs >= WARMUP * 1000;
      const due = Math.floor((elapsedMs * RATE) / 1000);
      while (emitted < due) {
        const i = emitted++ % sockets.length;
        const t0 = process.hrtime.bigint();
        if (recording) sent++;
        sockets[i].timeout(5000).emit('hub:to', `r-${(i + 1) % sockets.length}`, 'tick', i, (err) => {
          if (!recording) return;
          if (err) lost++;
          else samples.push(Number(process.hrtime.bigint() - t0) / 1e3);
        });
      }
      setTimeout(tick, 1);
    };
    tick();
  });
  const hubCpu = (cpuSeconds(hub.pid) - cpuBefore) / (WARMUP + SECONDS);
  await new Promise((r) => setTimeout(r, 1000)); // let the last acks arrive
  let floodStats = null;
  if (flooder) {
    flooder.child.kill('SIGUSR2');
    const m = await new Promise((resolve) => {
      const poll = setInterval(() => {
        const f = /flooder stats (\{.*\})/.exec(flooder.output());
        if (f) { clearInterval(poll); resolve(JSON.parse(f[1])); }
      }, 20);
    });
    floodStats = m;
    flooder.child.kill('SIGKILL');
  }
  const closedRateLimited = await metric(hub.admin, 'socketio_hub_sessions_closed_total{reason="rate_limited"}');
  const refused = await metric(hub.admin, 'socketio_hub_limit_refusals_total');
  for (const s of sockets) s.disconnect();
  hub.stop();
  samples.sort((a, b) => a - b);
  const result = {
    setup: name,
    rate: RATE,
    seconds: SECONDS,
    clients: CLIENTS,
    sent,
    acked: samples.length,
    lost,
    p50_us: Math.round(percentile(samples, 50)),
    p90_us: Math.round(percentile(samples, 90)),
    p99_us: Math.round(percentile(samples, 99)),
    max_us: Math.round(samples[samples.length - 1]),
    flood_packets_sent: floodStats ? floodStats.sent : 0,
    flood_connections: floodStats ? floodStats.opened : 0,
    flood_refused_handshakes: floodStats ? floodStats.refused : 0,
    hub_rate_limited_closes: closedRateLimited,
    hub_limit_refusals: refused,
    hub_cpu_cores: Math.round(hubCpu * 100) / 100,
  };
  console.log(JSON.stringify(result));
  return result;
}

(async () => {
  execFileSync('taskset', ['-a', '-p', '-c', GEN_CPU, String(process.pid)], { stdio: 'ignore' });
  if (RT) execFileSync('chrt', ['-a', '-r', '-p', '1', String(process.pid)], { stdio: 'ignore' });
  if (!fs.existsSync(HUB_BIN)) throw new Error(`no hub binary at ${HUB_BIN}: cargo build --release -p socketio-hub, or set HUB_BIN`);
  const setups = [
    ['no flooder', { flood: false, limits: null }],
    ['flooder, limits off', { flood: true, limits: null }],
    ['flooder, limits on', { flood: true, limits: LIMITS }],
  ];
  // SETUPS=1,3 runs some of them (1-based).
  const only = process.env.SETUPS ? process.env.SETUPS.split(',').map(Number) : [1, 2, 3];
  const runs = [];
  for (const [i, [name, opts]] of setups.entries()) {
    if (only.includes(i + 1)) runs.push(await measure(name, opts));
  }
  console.log(`\n| setup | acked | p50 µs | p90 µs | p99 µs | max µs | flood packets sent | flooder sessions (refused) | hub CPU (cores) |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |`);
  for (const r of runs) {
    console.log(`| ${r.setup} | ${r.acked}/${r.sent} | ${r.p50_us} | ${r.p90_us} | ${r.p99_us} | ${r.max_us} | ${r.flood_packets_sent} | ${r.flood_connections} (${r.flood_refused_handshakes}) | ${r.hub_cpu_cores} |`);
  }
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });

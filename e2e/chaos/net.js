'use strict';
// Where the chaos cluster's nodes live. Two topologies:
//
// - `netns` (root, `ip netns` available): node i runs in its own network namespace
//   `<prefix>-n<i>` with one veth whose far end is on a bridge in the root namespace. Node i is
//   10.<a>.<b>.i, the root namespace (balancer, senders, clients) is .254. Nodes reach each other
//   across the bridge. `cut(i)` partitions node i from the other NODES only: a blackhole route to
//   each peer inside node i's namespace, and to node i inside each peer's namespace — packets are
//   silently dropped both ways (no RST, no ICMP), exactly what a lost link looks like, while the
//   root namespace (clients, balancer) still reaches every node. `heal(i)` deletes the routes.
// - `loopback` (fallback): node i on 127.0.0.i in the root namespace; `cut` is unsupported
//   (there is no iptables here to drop loopback traffic selectively), so the partition scenario
//   is skipped with that reason.
//
// Namespaces are named `<prefix>-<pid>-n<i>` and removed on exit; stale ones of dead test
// processes are removed at setup.

const { spawnSync } = require('node:child_process');

const PREFIX = 'siohc';

function ip(args, { ns, check = true } = {}) {
  const argv = ns ? ['netns', 'exec', ns, 'ip', ...args] : args;
  const r = spawnSync('ip', argv, { encoding: 'utf8' });
  if (check && r.status !== 0) throw new Error(`ip ${argv.join(' ')} failed (${r.status}): ${r.stderr || r.error}`);
  return r;
}

/** Why netns cannot be used here, or null when it can. */
function netnsUnavailable() {
  if (process.getuid && process.getuid() !== 0) return 'not root';
  const probe = `${PREFIX}-probe-${process.pid}`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (r.status !== 0) return `ip netns add failed: ${(r.stderr || String(r.error)).trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return null;
}

/** Remove namespaces and links left by chaos runs whose process is gone. */
function removeStale() {
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout || '';
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0];
    const m = new RegExp(`^${PREFIX}-(\\d+)-n\\d+$`).exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = true;
    try { process.kill(pid, 0); } catch { alive = false; }
    if (!alive) spawnSync('ip', ['netns', 'del', name]);
  }
  const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout || '';
  for (const line of links.split('\n')) {
    const m = /^\d+: (sc(\d+)[bv]\d*)[@:]/.exec(line);
    if (!m) continue;
    let alive = true;
    try { process.kill(Number(m[2]), 0); } catch { alive = false; }
    if (!alive) spawnSync('ip', ['link', 'del', m[1]]);
  }
}

/** A netns topology of `n` nodes. Call `teardown()` when done (also done at exit). */
function netnsTopology(n) {
  removeStale();
  const pid = process.pid;
  // A /24 per test process, so parallel runs never share addresses: 10.(200+pid%50).(pid%250).0/24.
  const net = `10.${200 + (Math.floor(pid / 250) % 50)}.${pid % 250}`;
  const bridge = `sc${pid}b`;
  const names = [];
  const torn = { done: false };
  const teardown = () => {
    if (torn.done) return;
    torn.done = true;
    for (const ns of names) spawnSync('ip', ['netns', 'del', ns]);
    spawnSync('ip', ['link', 'del', bridge]);
  };
  process.on('exit', teardown);
  ip(['link', 'add', bridge, 'type', 'bridge']);
  ip(['addr', 'add', `${net}.254/24`, 'dev', bridge]);
  ip(['link', 'set', bridge, 'up']);
  for (let i = 1; i <= n; i++) {
    const ns = `${PREFIX}-${pid}-n${i}`;
    const veth = `sc${pid}v${i}`;
    ip(['netns', 'add', ns]);
    names.push(ns);
    ip(['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    ip(['link', 'set', veth, 'master', bridge]);
    ip(['link', 'set', veth, 'up']);
    ip(['addr', 'add', `${net}.${i}/24`, 'dev', 'eth0'], { ns });
    ip(['link', 'set', 'eth0', 'up'], { ns });
    ip(['link', 'set', 'lo', 'up'], { ns });
  }
  const host = (i) => `${net}.${i + 1}`;
  const cutSet = new Set();
  return {
    kind: 'netns',
    describe: `network namespaces ${names.join(', ')} on bridge ${bridge} (${net}.0/24)`,
    n,
    host,
    /** Command prefix that runs a process in node i's namespace. */
    wrap: (i) => ['ip', 'netns', 'exec', names[i]],
    /** Fixed ports work: every namespace has its own port space. */
    gossipPort: () => 7946,
    canCut: true,
    cut(i) {
      for (let j = 0; j < n; j++) {
        if (j === i) continue;
        ip(['route', 'add', 'blackhole', `${host(j)}/32`], { ns: names[i] });
        ip(['route', 'add', 'blackhole', `${host(i)}/32`], { ns: names[j] });
      }
      cutSet.add(i);
    },
    heal(i) {
      for (let j = 0; j < n; j++) {
        if (j === i) continue;
        ip(['route', 'del', 'blackhole', `${host(j)}/32`], { ns: names[i], check: false });
        ip(['route', 'del', 'blackhole', `${host(i)}/32`], { ns: names[j], check: false });
      }
      cutSet.delete(i);
    },
    teardown,
  };
}

/** The loopback fallback: 127.0.0.(i+1), no partition. */
function loopbackTopology(n, why) {
  return {
    kind: 'loopback',
    describe: `loopback 127.0.0.1-${n} (netns unavailable: ${why})`,
    n,
    host: (i) => `127.0.0.${i + 1}`,
    wrap: () => [],
    gossipPort: null,
    canCut: false,
    cutUnsupported: `no network namespaces (${why}) and no iptables on this machine to drop loopback traffic selectively`,
    cut() { throw new Error(this.cutUnsupported); },
    heal() {},
    teardown() {},
  };
}

/** The best topology here: netns when possible (CHAOS_NET=loopback forces the fallback). */
function topology(n) {
  const why = process.env.CHAOS_NET === 'loopback' ? 'CHAOS_NET=loopback' : netnsUnavailable();
  return why ? loopbackTopology(n, why) : netnsTopology(n);
}

module.exports = { topology, removeStale };

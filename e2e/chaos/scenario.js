'use strict';
// The chaos orchestrator: a 3-node hub cluster (serverless, REST API, recovery on), a
// round-robin balancer in front of it (balancer.js), client processes holding the sockets
// (clients.js) and a sender process (sender.js). A phase runs steady traffic, does one thing to
// the cluster, waits for every client to be back, lets traffic run on, stops the senders, waits
// for the last messages to arrive, and tallies what every client got (tally.js).
//
// Sizes come from the environment (defaults are the scripts/test size):
//   CHAOS_CLIENTS (300)       sockets in total (bench/chaos.sh: 1000)
//   CHAOS_POLLING_EVERY (4)   client g is polling-only when g ≡ -1 (mod this), else WebSocket-only
//                             (2 = half and half; see KNOWN_FAILURES.md#chaos-polling-scale)
//   CHAOS_PER_PROCESS (150)   sockets per client process
//   CHAOS_ROOMS (10)          rooms (a room stream each); client g is in room g mod ROOMS
//   CHAOS_ROOM_HZ (2)         messages per second per room stream
//   CHAOS_DIRECT_EVERY (20)   clients g ≡ 0 and g ≡ -1 (mod this) also get a direct stream (to
//                             their socket id): WebSocket and polling ones
//   CHAOS_DIRECT_HZ (1)       messages per second per direct stream
//   CHAOS_HOLD_MS (3000)      traffic before and after each action
//   CHAOS_CUT_MS (8000)       how long the partition lasts
//   CHAOS_OUT                 a file to write every phase's figures to (JSON)

const { fork } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { startHub, ACCESS_KEY } = require('../harness/hub');
const { CLUSTER_SECRET, secretFile, freePort, view, until, sleep } = require('../cluster/harness');
const { topology } = require('./net');
const { tally, line } = require('./tally');

/** Direct targets (the same rule as clients.js): g ≡ 0 or -1 (mod every). */
const isDirect = (g, every) => g % every === 0 || g % every === every - 1;

const env = (k, d) => (process.env[k] === undefined ? d : Number(process.env[k]));

function sizes() {
  return {
    clients: env('CHAOS_CLIENTS', 300),
    perProcess: env('CHAOS_PER_PROCESS', 150),
    rooms: env('CHAOS_ROOMS', 10),
    roomHz: env('CHAOS_ROOM_HZ', 2),
    pollingEvery: env('CHAOS_POLLING_EVERY', 4),
    directEvery: env('CHAOS_DIRECT_EVERY', 20),
    directHz: env('CHAOS_DIRECT_HZ', 1),
    holdMs: env('CHAOS_HOLD_MS', 3000),
    cutMs: env('CHAOS_CUT_MS', 8000),
  };
}

/** A child process speaking the IPC protocol of balancer/clients/sender.js. */
class Child {
  constructor(script, name, envExtra = {}) {
    this.name = name;
    this.proc = fork(path.join(__dirname, script), [], { env: { ...process.env, ...envExtra }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.waiters = [];
    this.handlers = [];
    this.proc.on('message', (m) => {
      for (const h of this.handlers) h(m);
      const i = this.waiters.findIndex((w) => w.pred(m));
      if (i >= 0) { const [w] = this.waiters.splice(i, 1); clearTimeout(w.timer); w.resolve(m); }
    });
    this.exited = new Promise((r) => this.proc.on('exit', (code, signal) => {
      for (const w of this.waiters.splice(0)) { clearTimeout(w.timer); w.reject(new Error(`${name} exited (${code ?? signal})`)); }
      r({ code, signal });
    }));
  }

  send(m) { if (this.proc.connected) this.proc.send(m); }

  /** The next message matching `pred` (a type name or a function), within `ms`. */
  next(pred, ms = 30000) {
    const p = typeof pred === 'string' ? (m) => m.type === pred : pred;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no answer within ${ms} ms`)), ms);
      this.waiters.push({ pred: p, resolve, reject, timer });
    });
  }

  async ask(m, type, ms) { const w = this.next(type, ms); this.send(m); return w; }

  kill() { try { this.proc.kill('SIGKILL'); } catch { /* gone */ } }
}

class Chaos {
  constructor(opts = {}) {
    this.size = { ...sizes(), ...opts };
    this.net = topology(3);
    this.nodes = [];
    this.results = {};
    this.log = (s) => process.stderr.write(`chaos: ${s}\n`);
  }

  nodeConfig(i) {
    this.secret = this.secret || secretFile(CLUSTER_SECRET);
    return {
      shutdown_grace_ms: 6000,
      drain_period_ms: 2000,
      engine: { ping_interval_ms: 5000, ping_timeout_ms: 5000 },
      socketio: { recovery: { enabled: true, max_disconnection_ms: 60000, max_buffered_packets: 100000 } },
      cluster: {
        secret_file: this.secret,
        node_name: `n${i + 1}`,
        seeds: this.seeds,
        gossip_listen: `${this.net.host(i)}:${this.gossip[i]}`,
        mesh_listen: `${this.net.host(i)}:0`,
        gossip_interval_ms: 100,
        request_timeout_ms: 2000,
      },
      permissions: [{ namespace: '/', join: ['*'], emit: ['*'] }],
    };
  }

  async startNode(i) {
    const host = this.net.host(i);
    const deadline = Date.now() + 15000;
    for (;;) {
      try {
        this.nodes[i] = await startHub(this.nodeConfig(i), { listen: `${host}:0`, adminListen: `${host}:0`, wrap: this.net.wrap(i) });
        return this.nodes[i];
      } catch (e) {
        // A restarted node's gossip port may linger for a moment.
        if (Date.now() > deadline) throw e;
        await sleep(200);
      }
    }
  }

  endpoints() {
    return this.nodes.map((n, i) => ({ name: `n${i + 1}`, clients: n.clients, admin: n.admin, base: n.url }));
  }

  /** Tell the balancer and the senders where the nodes are now (a restart moves the client port). */
  publish() {
    const list = this.endpoints();
    this.balancer.send({ type: 'endpoints', list });
    this.sender.send({ type: 'nodes', nodes: list });
  }

  setUsable(names) {
    this.usable = names;
    this.sender.send({ type: 'usable', names });
  }

  async waitPeers(ms = 30000) {
    await until(async () => {
      const views = await Promise.all(this.nodes.map(view));
      return views.every((v) => v.peers.length === 2 && v.peers.every((p) => p.linked && p.ready));
    }, 'every node to see 2 ready peers', ms);
  }

  async start() {
    const n = 3;
    this.log(`topology: ${this.net.describe}`);
    this.gossip = [];
    for (let i = 0; i < n; i++) this.gossip.push(this.net.gossipPort ? this.net.gossipPort(i) : await freePort(this.net.host(i)));
    this.seeds = this.gossip.map((p, i) => `${this.net.host(i)}:${p}`);
    await Promise.all([0, 1, 2].map((i) => this.startNode(i)));
    await this.waitPeers();
    this.balancer = new Child('balancer.js', 'balancer');
    const { url } = await this.balancer.next('listening');
    this.url = url;
    this.sender = new Child('sender.js', 'sender');
    this.sender.send({ type: 'start', key: ACCESS_KEY, nodes: this.endpoints() });
    this.publish();
    this.setUsable(['n1', 'n2', 'n3']);
    // The balancer routes only to endpoints whose readiness probe passed.
    await until(async () => (await this.balancer.ask({ type: 'stats' }, 'stats')).usable.length === 3, 'the balancer to see 3 ready endpoints');
    const s = this.size;
    this.workers = [];
    const readies = [];
    for (let first = 0; first < s.clients; first += s.perProcess) {
      const w = new Child('clients.js', `clients@${first}`);
      w.handlers.push((m) => {
        if (m.type === 'sid') this.sender.send({ type: 'target', g: m.g, sid: m.sid });
        if (m.type === 'log' && process.env.CHAOS_VERBOSE) this.log(m.line);
      });
      readies.push(w.next('ready', 90000 + 20000 * s.perProcess / 10));
      w.send({
        type: 'start', url, first, count: Math.min(s.perProcess, s.clients - first), rooms: s.rooms,
        directEvery: s.directEvery, pollingEvery: s.pollingEvery, reconnectDelayMs: 200, reconnectDelayMaxMs: 2000, phase: 'setup',
      });
      this.workers.push(w);
    }
    const r = await Promise.all(readies);
    const connected = r.reduce((a, x) => a + x.connected, 0);
    if (!r.every((x) => x.ok)) throw new Error(`only ${connected} of ${s.clients} clients connected and joined`);
    this.log(`${connected} clients connected through ${url}; sockets per node: ${(await this.socketsPerNode()).join(', ')}`);
  }

  /** `socketio_hub_sockets` of every node (null for a node that does not answer). */
  async socketsPerNode() {
    return Promise.all(this.nodes.map(async (n) => {
      try {
        const text = await (await fetch(`${n.adminUrl}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
        const l = text.split('\n').find((x) => x.startsWith('socketio_hub_sockets '));
        return l ? Number(l.split(' ')[1]) : null;
      } catch { return null; }
    }));
  }

  /** Every node's drop counters (`events_dropped_total`, `mesh_dropped_total`), by label. */
  async drops() {
    return Promise.all(this.nodes.map(async (n) => {
      try {
        const text = await (await fetch(`${n.adminUrl}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
        return text.split('\n').filter((l) => /^socketio_hub_(events|mesh)_dropped_total\{/.test(l) && !/ 0$/.test(l))
          .map((l) => l.replace('socketio_hub_', ''));
      } catch { return null; }
    }));
  }

  streams() {
    const s = this.size;
    const list = [];
    for (let k = 0; k < s.rooms; k++) list.push({ name: `r${k}`, hz: s.roomHz });
    for (let g = 0; g < s.clients; g++) if (isDirect(g, s.directEvery)) list.push({ name: `d${g}`, hz: s.directHz });
    return list;
  }

  async progress(last) {
    const id = Math.random();
    const rs = await Promise.all(this.workers.map((w) => w.ask({ type: 'progress', id, last }, (m) => m.type === 'progress' && m.id === id)));
    return rs.reduce((a, x) => ({ connected: a.connected + x.connected, tails: a.tails + x.tails, count: a.count + x.count }), { connected: 0, tails: 0, count: 0 });
  }

  async allConnected(ms = 60000) {
    await until(async () => { const p = await this.progress(); return p.connected === p.count; }, 'every client to be connected again', ms);
  }

  /**
   * Run phase `name`: traffic, `action()`, every client back, traffic, stop, tail, tally.
   * Resolves with the figures (also kept in this.results[name]).
   */
  async phase(name, action) {
    const s = this.size;
    await Promise.all(this.workers.map((w) => w.ask({ type: 'phase', phase: name }, 'phase')));
    this.sender.send({ type: 'run', phase: name, streams: this.streams() });
    const t0 = Date.now();
    await sleep(s.holdMs);
    const notes = (await action()) || {};
    try {
      await this.allConnected();
    } catch (e) {
      notes.notBack = e.message;
    }
    await sleep(s.holdMs);
    const sent = await this.sender.ask({ type: 'stop' }, 'report', 30000);
    const last = {};
    // Room streams only: a direct stream's last message may have gone to a socket id its client
    // had already left behind (a new session), which is the "not recovered" case, not a straggler.
    for (const [st, r] of Object.entries(sent.streams)) if (r.accepted.length && st.startsWith('r')) last[st] = Math.max(...r.accepted);
    // Quiescence: every connected client has the last message of each of its streams (polling
    // clients may be a round trip behind), within a deadline; stragglers are tallied as they are.
    try {
      await until(async () => { const p = await this.progress(last); return p.tails === p.count; }, 'the last messages to arrive', 15000);
    } catch (e) { notes.tail = e.message; }
    const reports = await Promise.all(this.workers.map((w) => w.ask({ type: 'report' }, 'report', 30000)));
    const clients = reports.flatMap((r) => r.clients);
    const t = tally(clients, sent);
    t.durationMs = Date.now() - t0;
    t.notes = notes;
    t.uncertainWhy = Object.values(sent.streams).flatMap((x) => x.uncertain).slice(0, 5);
    t.perNode = await this.socketsPerNode();
    t.drops = await this.drops();
    this.results[name] = t;
    this.log(line(name, t));
    this.log(`${name} drop counters per node (since each node started): ${JSON.stringify(t.drops)}`);
    if (Object.keys(notes).length) this.log(`${name} notes: ${JSON.stringify(notes)}`);
    if (t.examples.length) this.log(`${name} loss examples: ${JSON.stringify(t.examples)}`);
    const slow = clients.flatMap((c) => c.reconnects.map((r) => ({ g: c.g, tr: c.transport, ms: r.ms, reason: r.reason, attempts: r.attempts, errors: r.errors, recovered: r.recovered }))).sort((a, b) => b.ms - a.ms).slice(0, 3);
    if (slow.length) this.log(`${name} slowest reconnections: ${JSON.stringify(slow)}`);
    if (process.env.CHAOS_OUT) fs.writeFileSync(process.env.CHAOS_OUT, JSON.stringify({ size: this.size, topology: this.net.kind, results: this.results }, null, 2));
    // Every client report and what the senders did, to read a failure offline.
    if (process.env.CHAOS_DUMP) fs.writeFileSync(`${process.env.CHAOS_DUMP}.${name}.json`, JSON.stringify({ clients, sent, notes, phaseStartedAt: t0 }));
    return t;
  }

  // ---- the actions ----

  /** Senders off node i (as a Service drops the endpoint), in-flight calls done, then SIGKILL. */
  async kill(i) {
    this.setUsable(this.usable.filter((x) => x !== `n${i + 1}`));
    await sleep(500);
    const before = await this.socketsPerNode();
    await this.nodes[i].kill();
    return { killed: `n${i + 1}`, socketsBefore: before };
  }

  /** Start node i again (new generation, new client port) and put it back behind the balancer. */
  async restart(i) {
    const t0 = Date.now();
    await this.startNode(i);
    await this.waitPeers();
    this.publish();
    this.setUsable([...new Set([...this.usable, `n${i + 1}`])].sort());
    return { restarted: `n${i + 1}`, rejoinMs: Date.now() - t0 };
  }

  /** Roll every node: endpoint removed, SIGTERM (paced drain), exit, start again, rejoin. */
  async roll() {
    const steps = [];
    for (let i = 0; i < 3; i++) {
      const name = `n${i + 1}`;
      this.setUsable(this.usable.filter((x) => x !== name));
      this.balancer.send({ type: 'remove', name });
      await sleep(500);
      const t0 = Date.now();
      const status = await this.nodes[i].stop(10000);
      const drainMs = Date.now() - t0;
      await this.startNode(i);
      await this.waitPeers();
      this.publish();
      this.balancer.send({ type: 'restore', name });
      this.setUsable([...new Set([...this.usable, name])].sort());
      await this.allConnected().catch(() => {});
      steps.push({ node: name, exit: status, drainMs, socketsAfter: await this.socketsPerNode() });
    }
    return { steps };
  }

  /** Cut node i off from the other nodes for `cutMs`, then heal and wait for the cluster. */
  async partition(i) {
    if (!this.net.canCut) throw new Error(this.net.cutUnsupported);
    const name = `n${i + 1}`;
    this.setUsable(this.usable.filter((x) => x !== name));
    await sleep(500);
    const before = await this.socketsPerNode();
    this.net.cut(i);
    const cutAt = Date.now();
    await sleep(this.size.cutMs);
    const during = await this.socketsPerNode();
    const fence = await this.fenceProbe(i);
    // Each node's ready, linked peers while cut (the majority should see 1, the cut node 0).
    const views = await Promise.all(this.nodes.map((n) => view(n).then((v) => v.peers.filter((p) => p.linked && p.ready).length, () => null)));
    this.net.heal(i);
    const healAt = Date.now();
    let healedMs = null;
    try {
      await this.waitPeers(30000);
      healedMs = Date.now() - healAt;
    } catch (e) {
      this.log(`partition: the cluster did not heal: ${e.message}`);
    }
    this.setUsable(['n1', 'n2', 'n3']);
    return { cut: name, cutMs: healAt - cutAt, socketsBefore: before, socketsDuring: during, peersDuring: views, fence, healedMs };
  }

  /** What the cut node answers while cut: readiness, a REST emit, its fence gauge. */
  async fenceProbe(i) {
    const n = this.nodes[i];
    const b = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const body = `${b({ alg: 'HS256', typ: 'JWT' })}.${b({ sub: 'chaos-probe', iat: now, exp: now + 600 })}`;
    const token = `${body}.${crypto.createHmac('sha256', ACCESS_KEY).update(body).digest('base64url')}`;
    const out = {};
    try {
      out.readyz = (await fetch(`${n.adminUrl}/readyz`, { signal: AbortSignal.timeout(2000) })).status;
      const r = await fetch(`${n.url}/api/v1/emit`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ rooms: ['probe'], event: 'probe', args: [] }),
        signal: AbortSignal.timeout(2000),
      });
      out.rest = r.status;
      out.retryAfter = r.headers.get('retry-after');
      const text = await (await fetch(`${n.adminUrl}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
      const m = /^socketio_hub_cluster_fenced (\d+)/m.exec(text);
      out.fenced = m ? Number(m[1]) : null;
    } catch (e) {
      out.error = e.message;
    }
    return out;
  }

  async stop() {
    for (const w of this.workers || []) w.send({ type: 'close' });
    await Promise.all((this.workers || []).map((w) => Promise.race([w.exited, sleep(3000).then(() => w.kill())])));
    for (const c of [this.balancer, this.sender]) if (c) c.kill();
    await Promise.all(this.nodes.map((n) => n && n.close()));
    this.net.teardown();
  }
}

module.exports = { Chaos, sizes };

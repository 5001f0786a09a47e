'use strict';
// Connection state recovery across nodes: the clients of a node that is SIGKILLed reconnect
// through a balancer to the survivors and are recovered (same id, same rooms) with every packet
// they missed, in order, none twice — counted by per-sender sequence numbers — over WebSocket
// and long-polling; and a client of a live node recovered on another node (a network blip).

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { Clients, call, once, connected } = require('../harness/client');
const { ACCESS_KEY } = require('../harness/hub');
const { rest } = require('../app/app');
const WebSocket = require('ws');
const h = require('./harness');

const recovery = {
  socketio: { recovery: { enabled: true, max_disconnection_ms: 60000 } },
  drain_period_ms: 1000,
  shutdown_grace_ms: 3000,
  ...(process.env.REC_DEBUG ? { log: { level: 'info,socketio_hub::state::recovery=debug,socketio_hub::cluster::replicas=debug' } } : {}),
};
let cluster;
let balancer;
let live;
const clients = new Clients();
const hostPort = (n) => new URL(n.url).host;

before(async () => {
  cluster = await h.startCluster(3, recovery);
  live = [0];
  balancer = await h.roundRobinProxy(() => live.map((i) => hostPort(cluster.nodes[i])));
});
after(async () => {
  if (balancer) await balancer.close();
  if (cluster) await h.stopCluster(cluster);
});
afterEach(() => clients.closeAll());

/** A gauge of node `i`. */
async function gauge(i, name) {
  const text = await (await fetch(`${cluster.nodes[i].adminUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`socketio_hub_${name} `));
  return line ? Number(line.split(' ').pop()) : NaN;
}

/** Record `event` payloads `{ from, seq }` per sender; count gaps, duplicates, reorders. */
function tally(s, event) {
  const last = new Map();
  const t = { got: 0, lost: 0, dup: 0, reordered: 0, seqs: new Map() };
  s.on(event, (m) => {
    t.got += 1;
    const prev = last.get(m.from) ?? 0;
    if (m.seq === prev + 1) last.set(m.from, m.seq);
    else if (m.seq <= prev) t.dup += 1;
    else { t.lost += m.seq - prev - 1; last.set(m.from, m.seq); }
    t.seqs.set(m.from, last.get(m.from));
  });
  return t;
}

test('SIGKILL a node: its clients recover on the survivors with nothing lost, twice or out of order', async () => {
  // Clients on node 1 (the balancer sends everything there for now), half WebSocket, half polling.
  const victims = [];
  for (let i = 0; i < 6; i++) {
    const transports = i % 2 ? ['polling'] : ['websocket'];
    const s = await clients.connect(balancer.url, { transports, reconnection: true, reconnectionDelay: 200, reconnectionDelayMax: 500 });
    assert.deepEqual(await call(s, 'hub:join', 'chaos'), { ok: true });
    victims.push({ s, id: s.id, t: tally(s, 'seq'), direct: tally(s, 'mine') });
  }
  // Two senders on nodes 2 and 3: to the room, and to each victim's own id.
  const senders = [await clients.connect(cluster.nodes[1].url), await clients.connect(cluster.nodes[2].url)];
  let stop = false;
  const sent = [0, 0];
  const loops = senders.map(async (p, k) => {
    let seq = 0;
    while (!stop) {
      seq += 1;
      assert.deepEqual(await call(p, 'hub:to', 'chaos', 'seq', { from: k, seq }), { ok: true });
      for (const v of victims) await call(p, 'hub:to', v.id, 'mine', { from: k, seq });
      sent[k] = seq;
      await h.sleep(10);
    }
  });
  await h.until(() => victims.every((v) => v.t.got >= 10), 'traffic before the kill');
  // Each victim's session is replicated on one survivor (replicas = 1; the two senders' own
  // sessions are replicated too, possibly on a survivor), and every node logs.
  await h.until(async () => {
    const held = (await gauge(1, 'recovery_sessions')) + (await gauge(2, 'recovery_sessions'));
    return held >= victims.length && held <= victims.length + 2;
  }, 'one replica of each victim on the survivors');
  assert.ok((await gauge(2, 'recovery_log_packets')) > 0, 'the survivors log the broadcasts');

  const recovered = victims.map((v) => once(v.s, 'connect', 20000));
  live = [1, 2];
  await cluster.nodes[0].kill();
  await Promise.all(recovered);
  for (const v of victims) {
    assert.equal(v.s.recovered, true, `socket ${v.id} recovered`);
    assert.equal(v.s.id, v.id, 'same id');
  }
  // Traffic continues after the recovery, then stops; a barrier per sender ends it.
  await h.until(() => victims.every((v) => v.t.got >= 60), 'traffic after the recovery', 20000);
  stop = true;
  await Promise.all(loops);
  await h.until(
    () => victims.every((v) => [0, 1].every((k) => v.t.seqs.get(k) === sent[k] && v.direct.seqs.get(k) === sent[k])),
    'every sent message delivered',
  );
  for (const v of victims) {
    for (const t of [v.t, v.direct]) {
      assert.deepEqual({ lost: t.lost, dup: t.dup }, { lost: 0, dup: 0 }, `socket ${v.id}`);
    }
  }
  // The survivors keep the room: a fresh broadcast reaches every victim once.
  const last = victims.map((v) => once(v.s, 'end'));
  await call(senders[0], 'hub:to', 'chaos', 'end', 'x');
  await Promise.all(last);
  await h.restartNode(cluster, 0);
  await h.waitPeers(cluster.nodes, 2);
});

test('a client recovered on another node than its own (a network blip): id, rooms, missed packets', async () => {
  live = [1];
  const s = await clients.connect(balancer.url, { transports: ['websocket'], reconnection: false });
  assert.deepEqual(await call(s, 'hub:join', 'blip'), { ok: true });
  const peer = await clients.connect(cluster.nodes[0].url);
  const first = once(s, 'news');
  assert.deepEqual(await call(peer, 'hub:to', 'blip', 'news', 0), { ok: true });
  await first;
  const id = s.id;
  const gone = once(s, 'disconnect');
  s.io.engine.close();
  await gone;
  for (let i = 1; i <= 3; i++) assert.deepEqual(await call(peer, 'hub:to', 'blip', 'news', i), { ok: true });
  live = [2];
  const replay = [];
  s.on('news', (v) => replay.push(v));
  s.connect();
  await connected(s);
  assert.equal(s.recovered, true);
  assert.equal(s.id, id);
  assert.deepEqual(replay, [1, 2, 3]);
  const next = once(s, 'news');
  assert.deepEqual(await call(peer, 'hub:to', 'blip', 'news', 4), { ok: true });
  assert.equal((await next)[0], 4, 'still in its room on the new node');
  // Client on node 3, hub:to sender on node 1, REST caller on node 2: the REST emit reaches it.
  const viaRest = once(s, 'news');
  const r = await rest(cluster.nodes[1], 'POST', '/emit', { rooms: ['blip'], event: 'news', args: [5] }, { key: ACCESS_KEY });
  assert.equal(r.status, 202);
  assert.equal((await viaRest)[0], 5, 'a REST emit on a third node reaches the recovered socket');
});

/** A raw Socket.IO client over a WebSocket: the text frames it got, in order. */
function rawClient(node) {
  const ws = new WebSocket(`${node.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
  const got = [];
  const waiters = [];
  ws.on('message', (d, binary) => {
    if (binary) return;
    got.push(String(d));
    for (const w of waiters.splice(0)) w();
  });
  const closed = new Promise((resolve) => ws.on('close', resolve));
  const next = async (pred, what) => {
    const deadline = Date.now() + 5000;
    for (;;) {
      const i = got.findIndex(pred);
      if (i >= 0) return got.splice(i, 1)[0];
      if (Date.now() > deadline) throw new Error(`no ${what} (got ${JSON.stringify(got)})`);
      await new Promise((r) => { waiters.push(r); setTimeout(r, 100); });
    }
  };
  return { ws, got, next, closed };
}

test('a client back on another node while its old transport lingers: the socket moves at once, nothing twice', async () => {
  // The old connection dies silently (it stops answering; its node would notice only at the ping
  // timeout, 45 s by default): the client connects to another node with its recovery id.
  const old = rawClient(cluster.nodes[0]);
  await old.next((t) => t.startsWith('0{'), 'OPEN');
  old.ws.send('40');
  const hello = JSON.parse((await old.next((t) => t.startsWith('40'), 'CONNECT')).slice(2));
  assert.ok(hello.pid, 'recovery is on: a pid');
  old.ws.send('420["hub:join","moved"]');
  await old.next((t) => t.startsWith('430'), 'join ack');
  const before = await gauge(0, 'sockets');

  const back = rawClient(cluster.nodes[1]);
  await back.next((t) => t.startsWith('0{'), 'OPEN');
  back.ws.send(`40${JSON.stringify({ pid: hello.pid })}`);
  const again = JSON.parse((await back.next((t) => t.startsWith('40'), 'CONNECT')).slice(2));
  assert.equal(again.sid, hello.sid, 'recovered: the same socket id');
  // The old socket left node 1 at once (not at its ping timeout), its session closed — whether
  // node 2 claimed it from node 1 or restored it from a replica it held itself.
  const closedInTime = await Promise.race([old.closed.then(() => true), h.sleep(3000).then(() => false)]);
  assert.ok(closedInTime, 'node 1 closed the old session within 3 s');
  await h.until(async () => (await gauge(0, 'sockets')) <= before - 1, 'the old socket gone from node 1', 3000);
  // The room is the moved socket's: one emit, one delivery, to the new connection only.
  const r = await rest(cluster.nodes[2], 'POST', '/emit', { rooms: ['moved'], event: 'hi', args: [1] }, { key: ACCESS_KEY });
  assert.equal(r.status, 202);
  await back.next((t) => t.startsWith('42["hi",1'), 'the emit');
  await h.sleep(300);
  assert.equal(back.got.filter((t) => t.startsWith('42["hi"')).length, 0, 'once');
  back.ws.close();
});

test('rolling restart (SIGTERM each node in turn): every client recovered each time, nothing lost or twice', async () => {
  live = [0, 1, 2];
  const members = [];
  for (let i = 0; i < 9; i++) {
    const transports = i % 2 ? ['polling'] : ['websocket'];
    const s = await clients.connect(balancer.url, { transports, reconnection: true, reconnectionDelay: 200, reconnectionDelayMax: 500 });
    assert.deepEqual(await call(s, 'hub:join', 'roll'), { ok: true });
    const m = { s, id: s.id, t: tally(s, 'seq'), drops: 0 };
    s.on('disconnect', () => { m.drops += 1; });
    members.push(m);
  }
  // One REST sender on one keep-alive connection: it stays on a node that is in service and
  // moves before that node is taken out (per-sender order holds per emitting node).
  let stop = false;
  let seq = 0;
  let sticky = 2;
  let inFlight = Promise.resolve();
  const loop = (async () => {
    while (!stop) {
      const via = cluster.nodes[sticky];
      let done;
      inFlight = new Promise((r) => { done = r; });
      const r = await rest(via, 'POST', '/emit', { rooms: ['roll'], event: 'seq', args: [{ from: 0, seq: seq + 1 }] }, { key: ACCESS_KEY });
      assert.equal(r.status, 202);
      seq += 1;
      done();
      await h.sleep(10);
    }
  })();
  for (let i = 0; i < 3; i++) {
    await h.until(() => members.every((m) => m.t.got >= seq - 5 && m.t.got > 0), `traffic before rolling node ${i + 1}`)
      .catch((e) => { throw new Error(`${e.message}; seq ${seq}; ${members.map((m) => `${m.id}:${m.s.connected}/${m.s.recovered}/${m.t.got}/${m.drops}`).join(' ')}`); });
    live = [0, 1, 2].filter((j) => j !== i); // out of the Service first, then SIGTERM
    if (sticky === i) {
      sticky = live[0];
      await inFlight;
      await h.sleep(200); // what the old node emitted reaches every node before the new one emits
    }
    await cluster.nodes[i].stop();
    await h.restartNode(cluster, i);
    await h.waitPeers(cluster.nodes, 2);
    live = [0, 1, 2];
  }
  await h.until(() => members.every((m) => m.s.connected), 'every client connected after the roll', 20000);
  stop = true;
  await loop;
  await h.until(() => members.every((m) => m.t.seqs.get(0) === seq), 'every message delivered', 20000)
    .catch((e) => { throw new Error(`${e.message}; seq ${seq}; ${members.map((m) => `${m.id}:${m.s.recovered}/${m.t.seqs.get(0)}/${m.t.lost}/${m.t.dup}/${m.drops}`).join(' ')}`); });
  let moved = 0;
  for (const m of members) {
    assert.equal(m.s.id, m.id, 'same socket id after every move');
    assert.equal(m.s.recovered, m.drops > 0, 'recovered whenever it moved');
    assert.deepEqual({ lost: m.t.lost, dup: m.t.dup }, { lost: 0, dup: 0 }, `socket ${m.id}`);
    moved += m.drops;
  }
  assert.ok(moved >= members.length, `every client moved at least once (${moved} moves)`);
});

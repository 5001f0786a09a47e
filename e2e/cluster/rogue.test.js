'use strict';
// A three-node cluster sharing a secret, and a rogue fourth node with another secret and the same
// seeds (what anyone on the pod network could start): the rogue never becomes a peer, nothing its
// clients send reaches the cluster's clients, nothing the cluster broadcasts reaches the rogue's,
// and every node counts the refusals. A raw TCP client playing a foreign or old mesh peer is
// refused too.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const crypto = require('node:crypto');
const { Clients, call, collector } = require('../harness/client');
const h = require('./harness');

let cluster;
let rogue;
const clients = new Clients();
before(async () => {
  cluster = await h.startCluster(3);
  const spec = { name: 'rogue', host: '127.0.0.4', gossip: await h.freePort('127.0.0.4') };
  rogue = await h.startNode(spec, cluster.seeds, {
    cluster: { secret_file: h.secretFile('rogue-secret-that-is-long-enough-0123456789') },
  });
});
after(async () => {
  if (rogue) await rogue.close();
  if (cluster) await h.stopCluster(cluster);
});
afterEach(() => clients.closeAll());

const ws = { transports: ['websocket'] };

async function metric(n, name) {
  const text = await (await fetch(`${n.adminUrl}/metrics`)).text();
  return text.split('\n')
    .filter((l) => l.startsWith(`socketio_hub_${name}`))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

async function joined(url, room) {
  const s = await clients.connect(url, ws);
  assert.deepEqual(await call(s, 'hub:join', room), { ok: true });
  return s;
}

test('the rogue is refused by every node and never appears as a peer', async () => {
  // The rogue gossips to the seeds every round; each node drops its datagrams as unauthenticated.
  await h.until(async () => {
    const counts = await Promise.all(cluster.nodes.map((n) => metric(n, 'gossip_datagrams_dropped_total{reason="auth"}')));
    return counts.every((c) => c > 0);
  }, 'every node to count the rogue\'s gossip as unauthenticated');
  for (const n of cluster.nodes) {
    const v = await h.view(n);
    assert.equal(v.authenticated, true);
    assert.equal(v.peers.length, 2, `${v.node} sees exactly its two real peers`);
    assert.ok(v.peers.every((p) => !p.node.startsWith('rogue/')), `${v.node} never lists the rogue`);
    assert.equal(await metric(n, 'cluster_authenticated'), 1);
  }
  // Nothing the rogue sent opened, so no node answered it: it learned no member of the cluster.
  const rv = await h.view(rogue);
  assert.deepEqual(rv.peers, [], 'the rogue learned no member of the cluster');
});

test('broadcasts cross neither way between the rogue and the cluster', async () => {
  const members = await Promise.all(cluster.nodes.map((n) => joined(n.url, 'shared')));
  const spy = await joined(rogue.url, 'shared');
  await h.waitRoom(cluster, 'shared', [0, 1, 2]);
  const got = members.map((s) => collector(s, 'news'));
  const spied = collector(spy, 'news');
  // The rogue's client broadcasts to the room (and to the whole namespace's room it shares).
  for (let k = 0; k < 5; k++) assert.deepEqual(await call(spy, 'hub:to', 'shared', 'news', `rogue-${k}`), { ok: true });
  // The cluster broadcasts to the same room from each node; all members get them.
  for (let i = 0; i < 3; i++) assert.deepEqual(await call(members[i], 'hub:to', 'shared', 'news', `real-${i}`), { ok: true });
  for (let i = 0; i < 3; i++) {
    const seen = await got[i].until(2);
    assert.ok(seen.every((a) => String(a[0]).startsWith('real-')), `member ${i} got only real news: ${JSON.stringify(seen)}`);
  }
  // Ten gossip rounds for anything that might still leak.
  await h.sleep(1000);
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(got[i].got.map((a) => a[0]).sort(), ['real-0', 'real-1', 'real-2'].filter((_, j) => j !== i).sort(),
      `member ${i}: every real broadcast but its own, no rogue one`);
  }
  assert.deepEqual(spied.got, [], 'the rogue\'s client heard nothing from the cluster');
  assert.equal(await metric(rogue, 'mesh_messages_total{direction="out"}'), 0, 'the rogue sent nothing over the mesh');
  for (const n of cluster.nodes) {
    assert.equal(await metric(n, 'mesh_handshakes_refused_total{reason="identity"}'), 0);
  }
});

test('a raw TCP client playing a foreign or an old mesh peer is refused and counted', async () => {
  const v = await h.view(cluster.nodes[1]);
  const n1 = v.peers.find((p) => p.node.startsWith('n1/'));
  const [host, port] = [n1.mesh.slice(0, n1.mesh.lastIndexOf(':')), Number(n1.mesh.slice(n1.mesh.lastIndexOf(':') + 1))];
  const send = (bytes) => new Promise((resolve, reject) => {
    const s = net.connect(port, host, () => s.end(bytes));
    s.on('error', () => resolve());
    s.on('close', () => resolve());
    s.setTimeout(5000, () => { s.destroy(); reject(new Error('the node kept a refused link open')); });
    s.resume();
  });
  const node = cluster.nodes[0];
  const authBefore = await metric(node, 'mesh_handshakes_refused_total{reason="auth"}');
  const versionBefore = await metric(node, 'mesh_handshakes_refused_total{reason="version"}');
  // The current preamble (mesh protocol 4), then a forged Noise message: it does not decrypt without the secret.
  const forged = Buffer.concat([Buffer.from('SIOHMESH'), Buffer.from([0, 4, 0, 48]), crypto.randomBytes(48)]);
  await send(forged);
  // A plaintext (version 2) node's handshake.
  const name = Buffer.from('old');
  const old = Buffer.concat([Buffer.from('SIOHMESH'), Buffer.from([0, 2, 0, 0, 0, name.length]), name, Buffer.alloc(8)]);
  await send(old);
  await h.until(async () => (await metric(node, 'mesh_handshakes_refused_total{reason="auth"}')) === authBefore + 1,
    'the forged handshake to be counted');
  await h.until(async () => (await metric(node, 'mesh_handshakes_refused_total{reason="version"}')) === versionBefore + 1,
    'the old handshake to be counted');
  // The real links are untouched.
  await h.waitPeers(cluster.nodes, 2);
});

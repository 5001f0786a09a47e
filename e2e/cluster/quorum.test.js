'use strict';
// Partition handling on real processes (docs/partitions.md): a node that sees fewer than half
// of its cluster's members fences itself; drained peers do not count; failed ones are
// forgotten after cluster.quorum_forget_ms. (The network cut itself is e2e/chaos's partition
// phase; here two nodes die, which a survivor cannot tell from being cut off.)

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { io } = require('socket.io-client');
const { ACCESS_KEY } = require('../harness/hub');
const { startCluster, stopCluster, until, view } = require('./harness');

const FORGET_MS = 4000;

function token() {
  const b = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b({ alg: 'HS256', typ: 'JWT' })}.${b({ sub: 'quorum-test', iat: now, exp: now + 600 })}`;
  return `${body}.${crypto.createHmac('sha256', ACCESS_KEY).update(body).digest('base64url')}`;
}

async function emit(node) {
  const r = await fetch(`${node.url}/api/v1/emit`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token()}`, 'content-type': 'application/json' },
    body: JSON.stringify({ event: 'hello', args: [1] }),
  });
  return { status: r.status, retryAfter: r.headers.get('retry-after'), body: await r.json() };
}

const ready = async (node) => (await fetch(`${node.adminUrl}/readyz`)).status;

async function gauge(node, name) {
  const text = await (await fetch(`${node.adminUrl}/metrics`)).text();
  const m = new RegExp(`^socketio_hub_${name} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

test('a survivor of two crashes fences itself, moves its clients off, then serves alone once it forgets them', { timeout: 90000 }, async () => {
  const cluster = await startCluster(3, { cluster: { quorum_forget_ms: FORGET_MS }, drain_period_ms: 500 });
  const [n1, n2, n3] = cluster.nodes;
  try {
    await until(async () => (await ready(n1)) === 200, 'n1 ready');
    assert.equal(await gauge(n1, 'cluster_quorum_members'), 3);
    const client = io(n1.url, { transports: ['websocket'], reconnection: false });
    await new Promise((resolve, reject) => { client.once('connect', resolve); client.once('connect_error', reject); });
    const closed = new Promise((resolve) => client.once('disconnect', resolve));

    await n2.kill();
    await n3.kill();
    // 1 of 3: fenced after the grace period; its client is told to go elsewhere.
    await until(async () => (await gauge(n1, 'cluster_fenced')) === 1, 'n1 fenced', 15000);
    assert.equal(await ready(n1), 503);
    const refused = await emit(n1);
    assert.equal(refused.status, 503, JSON.stringify(refused));
    assert.equal(refused.retryAfter, '1');
    assert.match(refused.body.error, /cut off from the majority/);
    assert.equal(await closed, 'transport close');
    const newcomer = io(n1.url, { transports: ['polling'], reconnection: false });
    const outcome = await new Promise((resolve) => {
      newcomer.once('connect', () => resolve('connected'));
      newcomer.once('connect_error', (e) => resolve(`refused: ${e.message}`));
    });
    assert.match(outcome, /^refused/, 'a new session is refused while fenced');
    newcomer.close();

    // Once the failed peers are forgotten it is a cluster of one: ready and serving again.
    await until(async () => (await ready(n1)) === 200, 'n1 ready again', FORGET_MS + 15000);
    assert.equal(await gauge(n1, 'cluster_fenced'), 0);
    assert.equal(await gauge(n1, 'cluster_quorum_members'), 1);
    assert.equal(await gauge(n1, 'cluster_fences_total'), 1);
    assert.equal((await emit(n1)).status, 202);
    client.close();
  } finally {
    await stopCluster(cluster);
  }
});

test('peers that drain (SIGTERM) leave the count: the last node of a rolling scale-down never fences', { timeout: 90000 }, async () => {
  const cluster = await startCluster(3, { drain_period_ms: 200 });
  const [n1, n2, n3] = cluster.nodes;
  try {
    await until(async () => (await ready(n1)) === 200, 'n1 ready');
    await n2.stop();
    await until(async () => (await view(n1)).peers.length === 1, 'n1 sees n2 gone');
    await n3.stop();
    await until(async () => (await view(n1)).peers.length === 0, 'n1 sees n3 gone');
    // Several grace periods later it is still serving.
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(await gauge(n1, 'cluster_fenced'), 0);
    assert.equal(await gauge(n1, 'cluster_fences_total'), 0);
    assert.equal(await gauge(n1, 'cluster_quorum_members'), 1);
    assert.equal(await ready(n1), 200);
    assert.equal((await emit(n1)).status, 202);
  } finally {
    await stopCluster(cluster);
  }
});

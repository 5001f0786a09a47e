'use strict';
// Issue 11, "nothing lost across node loss and rollouts": three nodes (serverless, REST API,
// connection state recovery on), 300 clients (bench/chaos.sh: 1,000) through a round-robin
// balancer (WebSocket, and one in CHAOS_POLLING_EVERY long-polling: see
// KNOWN_FAILURES.md#chaos-polling-scale), steady REST emits to rooms and to single sockets with
// per-stream sequence numbers. Scenarios, in order, on the same cluster and clients:
//
//   steady     no fault: the harness's own baseline (must be all zeros)
//   kill       SIGKILL one node (senders taken off it first, as a Service drops an endpoint)
//   restart    start the killed node again; it rejoins and becomes an entry node again
//   rolling    SIGTERM each node in turn (paced drain), start it again, next
//   partition  cut one node off from the other two (network namespaces, blackhole routes both
//              ways; clients and balancer still reach it) for CHAOS_CUT_MS, then heal
//
// Every client checks each stream it is subscribed to: lost (never arrived), duplicated,
// reordered, and at every reconnection `socket.recovered` and the time from disconnect to
// connect. A loss inside the gap of a reconnection where the client was told it was NOT
// recovered is allowed by Socket.IO's contract and counted apart ("while not recovered"); every
// other loss is silent and fails. See tally.js for the exact rules, e2e/README.md (Chaos) for
// how to run the bench size, and docs/partitions.md for what a partition does.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Chaos } = require('./scenario');
const { line } = require('./tally');

let chaos;
const fig = (name) => {
  const t = chaos && chaos.results[name];
  if (!t) throw new Error(`the ${name} phase did not run (see the test before this one)`);
  return t;
};

/** Zero silent loss, duplicates and reorders; every client back, got its streams' tails. */
function assertNothingSilentlyLost(name) {
  const t = fig(name);
  const msg = `${line(name, t)}\nnotes: ${JSON.stringify(t.notes)}\nexamples: ${JSON.stringify(t.examples)}`;
  assert.ok(t.accepted > 0, `no message was accepted in ${name}`);
  assert.equal(t.stillDown, 0, `clients still disconnected: ${msg}`);
  assert.equal(t.missing.silent, 0, `silent loss (no reconnection explains it): ${msg}`);
  assert.equal(t.missing.recovered, 0, `loss after a reconnection that said recovered: ${msg}`);
  assert.equal(t.missing.down, 0, msg);
  assert.equal(t.duplicated, 0, `duplicates: ${msg}`);
  assert.equal(t.reordered, 0, `reordered: ${msg}`);
}

/** The recovery target: every reconnected client recovered, nothing lost at all. */
function assertEveryoneRecovered(name, atLeast) {
  const t = fig(name);
  const msg = `${line(name, t)}\nnotes: ${JSON.stringify(t.notes)}`;
  assert.ok(t.reconnectedClients >= atLeast, `the fault moved only ${t.reconnectedClients} clients: ${msg}`);
  assert.equal(t.recoveredClients, t.reconnectedClients, `clients not recovered: ${msg}`);
  assert.equal(t.missing.notRecovered, 0, `lost while not recovered: ${msg}`);
}

describe('chaos: nothing lost across node loss and rollouts', { timeout: 600000 }, () => {
  before(async () => {
    chaos = new Chaos();
    await chaos.start();
  });
  after(async () => { if (chaos) await chaos.stop(); });

  test('steady: no fault, every message arrives once and in order', async () => {
    const t = await chaos.phase('steady', async () => ({}));
    assertNothingSilentlyLost('steady');
    assert.equal(t.missing.notRecovered, 0, line('steady', t));
  });

  test('steady: without a fault no client is disconnected', () => {
    const t = fig('steady');
    assert.equal(t.reconnections, 0, line('steady', t));
  });

  test('kill: SIGKILL a node — no silent loss, no duplicate, no reorder; every client back', async () => {
    await chaos.phase('kill', () => chaos.kill(2));
    assertNothingSilentlyLost('kill');
  });

  test('kill: every client of the killed node is recovered on another node, nothing lost',
    () => assertEveryoneRecovered('kill', Math.floor(chaos.size.clients / 6)));

  test('restart: the killed node rejoins and carries traffic again — nothing lost', async () => {
    const t = await chaos.phase('restart', () => chaos.restart(2));
    assertNothingSilentlyLost('restart');
    assert.ok(t.notes.rejoinMs < 30000, JSON.stringify(t.notes));
  });

  test('rolling: SIGTERM each node in turn — no silent loss, no duplicate, no reorder; every client back', async () => {
    await chaos.phase('rolling', () => chaos.roll());
    assertNothingSilentlyLost('rolling');
  });

  test('rolling: every drained client is recovered on another node, nothing lost',
    () => assertEveryoneRecovered('rolling', Math.floor(chaos.size.clients / 2)));

  describe('partition', () => {
    test('partition: one node cut off from the others, then healed — the cluster re-forms, every client is back, no duplicate or reorder',
      async (t) => {
      if (!chaos.net.canCut) { t.skip(chaos.net.cutUnsupported); return; }
      const r = await chaos.phase('partition', async () => {
        // Cut the node holding the most sockets.
        const per = await chaos.socketsPerNode();
        return chaos.partition(per.indexOf(Math.max(...per)));
      });
      assert.ok(r.notes.healedMs !== null, `the cluster did not re-form after the heal: ${JSON.stringify(r.notes)}`);
      // While cut, the node is fenced: not ready, REST refused with a retry hint, gauge at 1.
      assert.deepEqual(r.notes.fence, { readyz: 503, rest: 503, retryAfter: '1', fenced: 1 }, JSON.stringify(r.notes));
      const cut = Number(r.notes.cut.slice(1)) - 1;
      assert.equal(r.notes.socketsDuring[cut], 0, `the fenced node kept sockets: ${JSON.stringify(r.notes)}`);
      assert.equal(r.stillDown, 0, line('partition', r));
      assert.equal(r.duplicated, 0, line('partition', r));
      assert.equal(r.reordered, 0, line('partition', r));
    });

    test('partition: no silent loss — every message is delivered, or its client is told it was not recovered',
      (t) => {
        if (!chaos.net.canCut) { t.skip(chaos.net.cutUnsupported); return; }
        assertNothingSilentlyLost('partition');
      });
  });
});

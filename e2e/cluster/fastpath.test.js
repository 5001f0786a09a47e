'use strict';
// With slow gossip (4 s rounds), a room that just gained its first member on one node is
// routable from the others at once: the node announces it over the mesh ahead of gossip.

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { Clients, call, collector } = require('../harness/client');
const h = require('./harness');

let cluster;
const clients = new Clients();
before(async () => { cluster = await h.startCluster(2, { cluster: { gossip_interval_ms: 4000 } }); });
after(async () => { if (cluster) await h.stopCluster(cluster); });
afterEach(() => clients.closeAll());

test('a fresh room is routable before gossip carries it (mesh announcement)', async () => {
  const ws = { transports: ['websocket'] };
  const sender = await clients.connect(cluster.nodes[0].url, ws);
  const member = await clients.connect(cluster.nodes[1].url, ws);
  const got = collector(member, 'early');
  assert.deepEqual(await call(member, 'hub:join', 'fresh-room'), { ok: true });
  const joinedAt = Date.now();
  // Retry until delivered; with gossip alone this takes up to a 4 s round.
  await h.until(async () => {
    await call(sender, 'hub:to', 'fresh-room', 'early', 1);
    return got.got.length > 0;
  }, 'delivery to the fresh room', 10000);
  const ms = Date.now() - joinedAt;
  assert.ok(ms < 400, `routable ${ms} ms after the join, well before a 4 s gossip round`);
});

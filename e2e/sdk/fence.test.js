'use strict';
// Default mode and the fence (docs/partitions.md): the unchanged app (app.js + the SDK) linked
// to node 2 of 3, a client on node 1 and a REST caller on node 3 — then nodes 1 and 3 die, and
// node 2, seeing 1 of 3 members, fences itself: it closes the server link and refuses it (the
// SDK keeps retrying), answers REST with 503, and once it has forgotten the failed peers serves
// alone again — the SDK's link comes back by itself and clients are served by the app.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { startApp, waitForLinks, serverLinks, ACCESS_KEY } = require('./harness');
const { startCluster, stopCluster, until } = require('../cluster/harness');
const { Clients, once, call, collector } = require('../harness/client');
const { rest } = require('../app/app');

const FORGET_MS = 4000;
const cs = (url) => `Endpoint=${url};AccessKey=${ACCESS_KEY};`;
let cluster;
let app;
const clients = new Clients();
after(async () => {
  clients.closeAll();
  if (app) await app.stop();
  if (cluster) await stopCluster(cluster);
});

async function gauge(node, name) {
  const text = await (await fetch(`${node.adminUrl}/metrics`)).text();
  const m = new RegExp(`^socketio_hub_${name} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

test('the app linked to a node that gets fenced: link closed and refused while fenced, back by itself after', { timeout: 90000 }, async () => {
  cluster = await startCluster(3, { upstream: { mode: 'link' }, drain_period_ms: 300, cluster: { quorum_forget_ms: FORGET_MS } });
  const [n1, n2, n3] = cluster.nodes;
  app = await startApp({ name: 'fenced', connectionString: cs(n2.url) });
  await waitForLinks(n2, 1);

  // Three nodes: the client on node 1, its app on node 2, the REST caller on node 3.
  const s = clients.socket(n1.url, { reconnection: false });
  const [welcome] = await once(s, 'welcome');
  assert.equal(welcome.app, 'fenced');
  const got = collector(s, 'news');
  const r = await rest(n3, 'POST', '/emit', { sockets: [s.id], event: 'news', args: [1] }, { key: ACCESS_KEY });
  assert.equal(r.status, 202);
  assert.deepEqual((await got.until(1))[0], [1]);

  await n1.kill();
  await n3.kill();
  await until(async () => (await gauge(n2, 'cluster_fenced')) === 1, 'node 2 fenced', 20000);
  // The server link is closed and not let back in while fenced; REST is refused with a hint.
  await until(async () => (await serverLinks(n2)) === 0, 'the server link closed', 5000);
  const refused = await rest(n2, 'POST', '/emit', { event: 'news', args: [2] }, { key: ACCESS_KEY });
  assert.equal(refused.status, 503, JSON.stringify(refused.body));
  await new Promise((res) => setTimeout(res, 1000));
  if ((await gauge(n2, 'cluster_fenced')) === 1) assert.equal(await serverLinks(n2), 0, 'no link while fenced');

  // Failed peers forgotten: a cluster of one, serving; the SDK's retries bring the link back.
  await until(async () => (await gauge(n2, 'cluster_fenced')) === 0, 'the fence lifted', FORGET_MS + 15000);
  await waitForLinks(n2, 1, 30000);
  const back = clients.socket(n2.url);
  const [again] = await once(back, 'welcome');
  assert.equal(again.app, 'fenced');
  assert.deepEqual(await call(back, 'echo', 'after'), 'after');
});

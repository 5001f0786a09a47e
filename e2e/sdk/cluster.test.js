'use strict';
// Default mode at scale: the same unchanged app (app.js + the SDK lines) behind a 3-node hub
// cluster on 127.0.0.1-3. The app dials ONE address; clients land on every node — directly, and
// through a round-robin balancer that sends each request to the next node — and the client
// suite (suite.js, the one that passes against the plain app) must pass for all of them. Then a
// second app instance on node 3 shares the sessions of the cluster, a node holding an app's link
// is SIGKILLed (its app reconnects through the "Service", the sessions bound to it re-bind with
// ids and rooms kept), an app instance dies, and a stopped node never hangs a call.

const { test, before, after, describe, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startApp, waitForLinks, ACCESS_KEY } = require('./harness');
const { defineClientSuite } = require('./suite');
const { startCluster, stopCluster, roundRobinProxy, until, view } = require('../cluster/harness');
const { Clients, once, call, collector } = require('../harness/client');
const { rest } = require('../app/app');

const hostPort = (node) => node.url.replace('http://', '');
const cs = (url) => `Endpoint=${url};AccessKey=${ACCESS_KEY};`;

/** Wait until every node's gossip shows `n` application servers on the other nodes in total. */
function waitRemoteApps(cluster, perNode) {
  return until(async () => {
    const views = await Promise.all(cluster.nodes.map(view));
    return views.every((v, i) => {
      const remote = v.peers.reduce((sum, p) => sum + (p.apps || []).length, 0);
      const own = perNode[i] || 0;
      const total = perNode.reduce((a, b) => a + b, 0);
      return remote === total - own;
    });
  }, `app servers gossiped (${perNode})`);
}

describe('default mode on a 3-node cluster: the app linked to node 1, clients anywhere', () => {
  let cluster;
  let app;
  let balancer;
  before(async () => {
    cluster = await startCluster(3, { upstream: { mode: 'link' } });
    app = await startApp({ name: 'linked', connectionString: cs(cluster.nodes[0].url) });
    await waitForLinks(cluster.nodes[0], 1);
    await waitRemoteApps(cluster, [1, 0, 0]);
    balancer = await roundRobinProxy(cluster.nodes.map(hostPort));
  });
  after(async () => {
    if (balancer) await balancer.close();
    if (app) await app.stop();
    if (cluster) await stopCluster(cluster);
  });
  describe('clients on node 2', () => defineClientSuite(() => cluster.nodes[1].url));
  describe('clients on node 3', () => defineClientSuite(() => cluster.nodes[2].url));
  describe('clients through a round-robin balancer over all nodes', () => defineClientSuite(() => balancer.url));

  test('client on node 2, app linked to node 1, REST caller on node 3: one operation, three nodes', async () => {
    const clients = new Clients();
    try {
      const s = clients.socket(cluster.nodes[1].url, { auth: { name: 'three' } });
      await once(s, 'welcome');
      // REST on node 3 joins the socket held by node 2; its app server on node 1 learns it.
      const r = await rest(cluster.nodes[2], 'POST', '/sockets/join', { sockets: [s.id], join: ['rest-room'] }, { key: ACCESS_KEY });
      assert.deepEqual([r.status, r.body], [200, { matched: 1 }]);
      const me = await call(s, 'whoami');
      assert.deepEqual(me.rooms, [s.id, 'rest-room'].sort());
      // REST emit on node 3 to that room reaches the client on node 2.
      const got = collector(s, 'from-rest');
      const e = await rest(cluster.nodes[2], 'POST', '/emit', { rooms: ['rest-room'], event: 'from-rest', args: [7] }, { key: ACCESS_KEY });
      assert.equal(e.status, 202);
      assert.deepEqual((await got.until(1))[0], [7]);
      // The app on node 1 sees the socket's room through fetchSockets as well.
      const fetched = await call(s, 'fetch', 'rest-room');
      assert.deepEqual(fetched.map((f) => f.id), [s.id]);
    } finally {
      clients.closeAll();
    }
  });
});

describe('two app instances on a 3-node cluster: balancing, cross-node server APIs, failures', () => {
  let cluster;
  let appA;
  let appB;
  let service;
  let clients;
  const live = new Set([0, 1, 2]);
  before(async () => {
    // Slow failure detection (≈ 4 s) against a 1 s request timeout: a stopped node is still
    // routed to, so calls meet it and must not hang.
    cluster = await startCluster(3, { upstream: { mode: 'link' }, cluster: { gossip_interval_ms: 400, request_timeout_ms: 1000 } });
    // The apps' "Service": a balancer over the live nodes (what a Kubernetes Service does).
    service = await roundRobinProxy(() => [...live].map((i) => hostPort(cluster.nodes[i])));
    appA = await startApp({ name: 'A', connectionString: cs(cluster.nodes[0].url) });
    appB = await startApp({ name: 'B', connectionString: cs(cluster.nodes[2].url) });
    await waitForLinks(cluster.nodes[0], 1);
    await waitForLinks(cluster.nodes[2], 1);
    await waitRemoteApps(cluster, [1, 0, 1]);
  });
  after(async () => {
    if (service) await service.close();
    for (const a of [appA, appB]) if (a) await a.stop();
    if (cluster) await stopCluster(cluster);
  });
  beforeEach(() => { clients = new Clients(); });
  afterEach(() => clients.closeAll());

  /** Run `fn`; on failure print the nodes' and apps' last log lines (set E2E_DUMP=1). */
  const logged = (fn) => async () => {
    try { await fn(); } catch (e) {
      if (process.env.E2E_DUMP) {
        cluster.nodes.forEach((n, i) => console.error(`---- node ${i + 1}\n${n.log(60)}`));
        for (const a of [appA, appB]) if (a) console.error(`---- app\n${a.log()}`);
      }
      throw e;
    }
  };

  /** A client on node `i`, with its welcome. */
  async function on(i, auth = {}) {
    const s = clients.socket(cluster.nodes[i].url, { auth });
    const [welcome] = await once(s, 'welcome');
    return { s, welcome };
  }

  test('sessions of every node are balanced over both app servers', async () => {
    const apps = [];
    for (let i = 0; i < 12; i++) apps.push((await on(i % 3)).welcome.app);
    const a = apps.filter((x) => x === 'A').length;
    assert.ok(a >= 4 && a <= 8, `A served ${a} of 12: ${apps}`);
  });

  test('serverSideEmitWithAck reaches the app on the other node, and back', async () => {
    const byApp = {};
    for (let i = 0; i < 10 && !(byApp.A && byApp.B); i++) {
      const c = await on(1, { name: `c${i}` });
      byApp[c.welcome.app] = byApp[c.welcome.app] || c.s;
    }
    assert.ok(byApp.A && byApp.B, 'clients were not shared between A and B');
    assert.deepEqual(await call(byApp.A, 'ask-servers'), { answers: ['B'] });
    assert.deepEqual(await call(byApp.B, 'ask-servers'), { answers: ['A'] });
    const notes = collector(byApp.B, 'note');
    await call(byApp.A, 'tell-servers', 'hi');
    const [[note]] = await notes.until(1);
    assert.deepEqual(note, { from: 'A', msg: 'hi', at: 'B' });
  });

  test('rooms, broadcasts with acks and fetchSockets (with socket.data) span nodes and servers', async () => {
    const members = [];
    for (let i = 0; i < 3; i++) members.push(await on(i, { name: `m${i}` }));
    for (const m of members) {
      m.s.on('poll', (room, ack) => ack(`${m.welcome.id}:${room}`));
      await call(m.s, 'join', 'span');
    }
    const polled = await call(members[0].s, 'poll-room', 'span');
    assert.deepEqual(polled, { answers: members.map((m) => `${m.welcome.id}:span`).sort() });
    const fetched = await call(members[1].s, 'fetch', 'span');
    assert.deepEqual(fetched.map((f) => f.id), members.map((m) => m.welcome.id).sort((a, b) => a.localeCompare(b)));
    assert.deepEqual(fetched.map((f) => f.name).sort(), ['m0', 'm1', 'm2']);
    const got = members.map((m) => collector(m.s, 'room-msg'));
    members[2].s.emit('to-room-except', 'span', 'nobody', 'hello-span');
    for (const g of got) assert.deepEqual((await g.until(1))[0], ['hello-span']);
  });

  test('a stopped node never hangs a call: answers come from the live nodes within the timeout', logged(async () => {
    const members = [];
    for (let i = 0; i < 3; i++) members.push(await on(i, { name: `s${i}` }));
    for (const m of members) {
      m.s.on('poll', (room, ack) => ack(`${m.welcome.id}:${room}`));
      await call(m.s, 'join', 'stall');
    }
    const stopped = cluster.nodes[1];
    stopped.child.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, 100));
    try {
      // All three at once, before the failure detector drops the stopped node from routing.
      const t0 = Date.now();
      const timed = (p) => p.then((v) => ({ v, ms: Date.now() - t0 }));
      const [viaRest, viaLink, poll] = await Promise.all([
        timed(rest(cluster.nodes[0], 'POST', '/sockets/fetch', { rooms: ['stall'] }, { key: ACCESS_KEY })),
        timed(call(members[0].s, 'fetch', 'stall')),
        timed(call(members[2].s, 'poll-room', 'stall')),
      ]);
      // REST names the node that did not answer within request_timeout (1 s here).
      assert.equal(viaRest.v.status, 200);
      assert.deepEqual((viaRest.v.body.missingNodes || []).map((n) => n.split('/')[0]), ['n2'], JSON.stringify(viaRest.v.body));
      assert.ok(viaRest.ms < 2500, `REST fetch took ${viaRest.ms} ms`);
      // fetchSockets through the link: the live nodes' sockets, within the timeout.
      const ids = viaLink.v.map((f) => f.id);
      assert.ok(viaLink.ms < 2500, `fetchSockets took ${viaLink.ms} ms`);
      assert.ok(!ids.includes(members[1].welcome.id), `the stopped node cannot have answered: ${JSON.stringify({ ids, members: members.map((m) => m.welcome.id), ms: viaLink.ms, rest: viaRest })}`);
      assert.ok(ids.includes(members[0].welcome.id) && ids.includes(members[2].welcome.id), `fetched ${ids}`);
      // A broadcast with acks ends at its own timeout (3 s in app.js) with a timeout error.
      assert.ok(poll.ms < 4500, `poll took ${poll.ms} ms`);
      assert.match(poll.v.error || '', /timed out|timeout/, `poll: ${JSON.stringify(poll.v)}`);
    } finally {
      stopped.child.kill('SIGCONT');
    }
    // Back: the node rejoins and serves again.
    await until(async () => (await view(cluster.nodes[0])).peers.length === 2, 'node 2 back in the cluster');
    const again = await on(1, { name: 'back' });
    assert.deepEqual(await call(again.s, 'echo', 'x'), 'x');
  }));

  test('an app instance dies: its sessions on every node move to the other, keeping ids and rooms', logged(async () => {
    const byApp = { A: [], B: [] };
    for (let i = 0; i < 9; i++) {
      const c = await on(i % 3, { name: `d${i}` });
      byApp[c.welcome.app].push(c);
    }
    assert.ok(byApp.B.length > 0, 'no client on B');
    for (const c of byApp.B) await call(c.s, 'join', 'b-room');
    let disconnects = 0;
    for (const c of byApp.B) c.s.on('disconnect', () => { disconnects++; });
    await appB.kill();
    appB = null;
    await waitForLinks(cluster.nodes[2], 0);
    for (const c of byApp.B) {
      const me = await call(c.s, 'whoami');
      assert.equal(me.app, 'A');
      assert.equal(me.id, c.welcome.id);
      assert.deepEqual(me.rooms, [c.welcome.id, 'b-room'].sort());
    }
    assert.equal(disconnects, 0, 'a client saw a disconnect');
    appB = await startApp({ name: 'B', connectionString: cs(cluster.nodes[2].url) });
    await waitForLinks(cluster.nodes[2], 1);
  }));

  test('the node holding an app link is SIGKILLed: the app reconnects through the Service, sessions re-bind', logged(async () => {
    // App A dials the Service from now on (sent to node 1 first), so it can reach another node
    // when node 1 dies.
    await appA.stop();
    live.clear();
    live.add(0);
    appA = await startApp({ name: 'A', connectionString: cs(service.url) });
    await waitForLinks(cluster.nodes[0], 1);
    await waitRemoteApps(cluster, [1, 0, 1]);
    live.add(1);
    live.add(2);
    const kept = [];
    for (let i = 0; i < 10; i++) {
      const c = await on(1 + (i % 2), { name: `k${i}` });
      await call(c.s, 'join', 'survivors');
      kept.push(c);
    }
    assert.ok(kept.some((c) => c.welcome.app === 'A'), 'no client on A');
    let disconnects = 0;
    for (const c of kept) c.s.on('disconnect', () => { disconnects++; });
    live.delete(0);
    await cluster.nodes[0].kill();
    // A relinks through the Service to node 2 or 3.
    await until(async () => {
      const links = await Promise.all([1, 2].map(async (i) => {
        const text = await (await fetch(`${cluster.nodes[i].adminUrl}/metrics`)).text();
        const m = /^socketio_hub_server_links (\d+)/m.exec(text);
        return m ? Number(m[1]) : 0;
      }));
      return links[0] + links[1] === 2;
    }, 'app A to relink to a live node', 20000);
    // Sessions bound to A on node 1 re-bind once the survivors declare node 1 dead (what a
    // client sent to A on node 1 in that window is lost: see ARCHITECTURE.md, link caveats).
    await until(async () => (await Promise.all([1, 2].map((i) => view(cluster.nodes[i])))).every((v) => v.peers.length === 1),
      'node 1 to leave the survivors\' membership');
    for (const c of kept) {
      const me = await call(c.s, 'whoami');
      assert.equal(me.id, c.welcome.id);
      assert.deepEqual(me.rooms, [c.welcome.id, 'survivors'].sort());
    }
    assert.equal(disconnects, 0, 'a client on a surviving node saw a disconnect');
    const got = kept.map((c) => collector(c.s, 'room-msg'));
    kept[0].s.emit('to-room-except', 'survivors', 'nobody', 'after-kill');
    for (const g of got) assert.deepEqual((await g.until(1))[0], ['after-kill']);
  }));
});

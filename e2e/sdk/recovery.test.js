'use strict';
// Connection state recovery in default (link) mode across nodes: the unchanged app (app.js)
// linked to node 1; clients on node 2 join a room through the app; a sender on node 3 has the
// app broadcast numbered messages to the room; node 2 is SIGKILLed and its clients reconnect
// through a balancer to node 3, recovered (same id, rooms kept) with every message they missed,
// none twice, and the app still reaches them.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startApp, waitForLinks, ACCESS_KEY } = require('./harness');
const { startCluster, stopCluster, roundRobinProxy, until, sleep } = require('../cluster/harness');
const { Clients, once, call } = require('../harness/client');

const hostPort = (node) => node.url.replace('http://', '');
const cs = (url) => `Endpoint=${url};AccessKey=${ACCESS_KEY};`;

let cluster;
let app;
let balancer;
let live = [1];
const clients = new Clients();

before(async () => {
  cluster = await startCluster(3, {
    upstream: { mode: 'link' },
    socketio: { recovery: { enabled: true, max_disconnection_ms: 60000 } },
  });
  app = await startApp({ name: 'A', connectionString: cs(cluster.nodes[0].url) });
  await waitForLinks(cluster.nodes[0], 1);
  balancer = await roundRobinProxy(() => live.map((i) => hostPort(cluster.nodes[i])));
});
after(async () => {
  clients.closeAll();
  if (balancer) await balancer.close();
  if (app) await app.stop();
  if (cluster) await stopCluster(cluster);
});

test('link mode: clients of a SIGKILLed node recover on another node with every message, once', async () => {
  const victims = [];
  for (let i = 0; i < 4; i++) {
    const transports = i % 2 ? ['polling'] : ['websocket'];
    const s = clients.socket(balancer.url, { transports, reconnection: true, reconnectionDelay: 200, reconnectionDelayMax: 500 });
    await once(s, 'welcome');
    assert.deepEqual(await call(s, 'join', 'rr'), [s.id, 'rr'].sort());
    const v = { s, id: s.id, seqs: [] };
    s.on('room-msg', (m) => v.seqs.push(m));
    victims.push(v);
  }
  const sender = await clients.connect(cluster.nodes[2].url);
  await once(sender, 'welcome').catch(() => {});
  let seq = 0;
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      seq += 1;
      sender.emit('to-room', 'rr', seq);
      await sleep(15);
    }
  })();
  await until(() => victims.every((v) => v.seqs.length >= 10), 'messages before the kill');
  const back = victims.map((v) => once(v.s, 'connect', 20000));
  live = [2];
  await cluster.nodes[1].kill();
  await Promise.all(back);
  for (const v of victims) {
    assert.equal(v.s.recovered, true, `${v.id} recovered`);
    assert.equal(v.s.id, v.id);
  }
  const target = seq + 20;
  await until(() => seq >= target, 'messages after the recovery', 20000);
  stop = true;
  await loop;
  await until(() => victims.every((v) => v.seqs.at(-1) === seq), 'the last message delivered to every victim');
  const expected = Array.from({ length: seq }, (_, i) => i + 1);
  for (const v of victims) assert.deepEqual(v.seqs, expected, `${v.id}: every message once, in order`);
  // The app still sees the recovered sockets in their room.
  const whoami = await call(victims[0].s, 'whoami');
  assert.deepEqual(whoami.rooms, [victims[0].id, 'rr'].sort());
});

'use strict';
// The hub as real pods (run by scripts/k8s-node-test on the node it starts): a 3-replica
// SocketIOHub applied with kubectl becomes Ready once three real pods pass their readiness
// probes; the pods gossip into one cluster; socket.io-client clients on every pod get one emit;
// /metrics answers on every pod and on the operator; a deleted pod comes back by itself; a spec
// change rolls the pods one at a time while clients reconnect through the Service; deleting the
// hub garbage-collects everything. Nothing here writes any status: the operator, the
// Deployment and ReplicaSet controllers and the kubelet do.
//
// The tests share one hub and run in order; each later test needs the earlier ones.
// Env: KUBECONFIG, SIOH_OPERATOR_NS (the chart's namespace), SIOH_MEASURE (a JSON file the
// figures are written to), SIOH_K8S_LINK=0 to skip the default-mode (SDK) step.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { execFile } = require('node:child_process');
const { Clients, collector, signJwt, withTimeout } = require('../harness/client');

const NS = 'k8s-e2e';
const HUB = 'chat';
const OPERATOR_NS = process.env.SIOH_OPERATOR_NS || 'sioh-system';
const clients = new Clients();
const measures = {};
after(() => clients.closeAll());

function measure(name, value) {
  measures[name] = value;
  console.log(`MEASURE ${name}: ${value}`);
  if (process.env.SIOH_MEASURE) fs.writeFileSync(process.env.SIOH_MEASURE, JSON.stringify(measures, null, 2));
}

function kubectl(args, input) {
  return new Promise((resolve, reject) => {
    const child = execFile('kubectl', args, { maxBuffer: 64 << 20, timeout: 600000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`kubectl ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin.end(input);
  });
}
const kjson = async (...args) => JSON.parse(await kubectl([...args, '-o', 'json']));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll `probe` until it returns a truthy value; fail with the last value after `ms`. */
async function until(what, probe, ms = 120000, every = 250) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await sleep(every);
  }
}

const condition = (obj, type) => (obj.status?.conditions || []).find((c) => c.type === type);
const podReady = (p) => condition(p, 'Ready')?.status === 'True';
async function hubPods() {
  const list = await kjson('-n', NS, 'get', 'pods', '-l', `app.kubernetes.io/instance=${HUB}`);
  return list.items.filter((p) => !p.metadata.deletionTimestamp);
}
async function getJson(url, ms = 5000) {
  const res = await withTimeout(fetch(url), `GET ${url}`, ms);
  assert.equal(res.status, 200, `GET ${url}`);
  return res.json();
}
async function getText(url, ms = 5000) {
  const res = await withTimeout(fetch(url), `GET ${url}`, ms);
  assert.equal(res.status, 200, `GET ${url}`);
  return res.text();
}

let accessKey;
async function restGet(base, path) {
  const res = await withTimeout(fetch(`${base}/api/v1${path}`, {
    headers: { authorization: `Bearer ${signJwt({ sub: 'k8s-e2e' }, accessKey, { expiresIn: 300 })}` },
  }), `GET ${path}`);
  assert.equal(res.status, 200, `GET ${path}`);
  return res.json();
}

/**
 * Wait until `room` is routable from pod `from`: every other pod holding members of it (its own
 * GET /api/v1/rooms) appears with that room in `from`'s /cluster view. Rooms spread by gossip
 * (or the mesh's announcement a publish tick after a join), so an emit sent sooner may miss a
 * pod: the cluster e2e suite waits the same way.
 */
async function routable(pods, from, room) {
  const holders = [];
  for (const p of pods) {
    const { rooms } = await restGet(`http://${p.status.podIP}:3000`, '/rooms');
    if (rooms.some((r) => r.name === room)) holders.push(p.metadata.name);
  }
  await until(`room ${room} on ${holders.join(', ')} routable from ${from.metadata.name}`, async () => {
    const view = await getJson(`http://${from.status.podIP}:9090/cluster`);
    return holders.filter((h) => h !== from.metadata.name).every((h) => view.peers.some(
      (peer) => peer.node.startsWith(`${h}/`) && (peer.rooms['/'] || []).includes(room)));
  }, 30000, 100);
  return holders;
}

async function rest(base, path, body) {
  const res = await withTimeout(fetch(`${base}/api/v1${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${signJwt({ sub: 'k8s-e2e' }, accessKey, { expiresIn: 300 })}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  }), `POST ${path}`);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

const hubYaml = (extra = '') => `
apiVersion: socketio.dev/v1alpha1
kind: SocketIOHub
metadata:
  name: ${HUB}
  namespace: ${NS}
spec:
  replicas: 3
  upstream:
    mode: None
  shutdownGraceSeconds: 2
  log:
    format: Text
    level: ${extra || 'info'}
`;

const state = { ready: false };

test('kubectl apply a 3-replica SocketIOHub: kubectl wait Ready returns once three real pods pass their probes', async () => {
  await kubectl(['apply', '-f', '-'], `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "${NS}"}}`);
  const t0 = Date.now();
  await kubectl(['apply', '-f', '-'], hubYaml());
  await kubectl(['-n', NS, 'wait', '--for=condition=Ready', `socketiohub/${HUB}`, '--timeout=300s']);
  measure('apply_to_ready_ms', Date.now() - t0);
  const hub = await kjson('-n', NS, 'get', 'socketiohub', HUB);
  assert.equal(hub.status.readyReplicas, 3, 'readyReplicas');
  assert.equal(hub.status.observedGeneration, hub.metadata.generation);
  const pods = await hubPods();
  assert.equal(pods.length, 3);
  for (const p of pods) {
    assert.ok(podReady(p), `${p.metadata.name} is Ready`);
    assert.equal(p.status.phase, 'Running');
    const c = p.status.containerStatuses.find((s) => s.name === 'hub');
    assert.ok(c.ready && c.state.running, `${p.metadata.name}: hub container running and ready`);
    assert.equal(c.image, hub.spec.image || 'ghcr.io/socketio-hub/socketio-hub:0.1.0');
    assert.ok(p.status.podIP, `${p.metadata.name} has an IP`);
  }
  const deployment = await kjson('-n', NS, 'get', 'deployment', HUB);
  assert.equal(deployment.status.readyReplicas, 3, 'the Deployment controller counts three ready pods');
  state.ready = true;
});

test('the three pods gossip into one cluster: /cluster on each admin port shows two ready peers', async (t) => {
  if (!state.ready) return t.skip('the hub never became Ready');
  const t0 = Date.now();
  const pods = await hubPods();
  for (const p of pods) {
    const others = pods.filter((o) => o !== p).map((o) => o.metadata.name).sort();
    await until(`${p.metadata.name} to see ${others.join(', ')}`, async () => {
      const view = await getJson(`http://${p.status.podIP}:9090/cluster`);
      const peers = view.peers.filter((x) => x.ready).map((x) => x.node.split('@')[0].split('/')[0]);
      return view.peers.length === 2 && others.every((o) => peers.some((n) => n.startsWith(o))) && view;
    }, 150000, 500);
  }
  const converged = Date.now() - t0;
  measure('gossip_converged_after_ready_ms', converged);
  // Well before chitchat's own 60 s re-resolution: the hub retries its seed names itself.
  assert.ok(converged < 40000, `the pods found each other only after ${converged} ms`);
  state.gossip = true;
});

test('the idle hub pod: memory as the kubelet counts it (working set) and resident set', async (t) => {
  if (!state.ready) return t.skip('the hub never became Ready');
  const [p] = await hubPods();
  const base = '/sys/fs/cgroup/memory/kubepods';
  const dir = [`${base}/burstable/pod${p.metadata.uid}`, `${base}/pod${p.metadata.uid}`, `${base}/besteffort/pod${p.metadata.uid}`]
    .find((d) => fs.existsSync(d));
  if (!dir) return t.skip(`no cgroup v1 memory directory for pod ${p.metadata.uid} under ${base}`);
  const stat = Object.fromEntries(fs.readFileSync(`${dir}/memory.stat`, 'utf8').trim().split('\n').map((l) => l.split(' ')));
  const usage = Number(fs.readFileSync(`${dir}/memory.usage_in_bytes`, 'utf8'));
  const workingSet = usage - Number(stat.total_inactive_file || 0);
  measure('idle_hub_pod_working_set_bytes', workingSet);
  measure('idle_hub_pod_rss_bytes', Number(stat.total_rss));
  assert.ok(workingSet > 0 && workingSet < 512 << 20, `working set ${workingSet} within the 512Mi limit`);
});

test('socket.io-client clients on every pod join a room; one emit reaches the clients on all three', async (t) => {
  if (!state.gossip) return t.skip('the pods never formed one cluster');
  const secret = await kjson('-n', NS, 'get', 'secret', `${HUB}-access-keys`);
  accessKey = Buffer.from(secret.data.primaryKey, 'base64').toString();
  const pods = await hubPods();
  const sockets = [];
  for (const p of pods) {
    for (const transports of [['websocket'], ['polling']]) {
      const s = await clients.connect(`http://${p.status.podIP}:3000`, { transports });
      sockets.push({ s, pod: p.metadata.name });
    }
  }
  // Join through pod 0's REST API: cluster-wide, so sockets held by the other pods join too.
  const [first, , third] = pods.map((p) => `http://${p.status.podIP}:3000`);
  const joined = await rest(first, '/sockets/join', { sockets: sockets.map((x) => x.s.id), join: ['k8s-room'] });
  assert.equal(joined.status, 200, JSON.stringify(joined.body));
  assert.equal(joined.body.matched, sockets.length, 'every socket, on every pod, matched');
  // The room must be known to the emitting pod before the emit is routed (gossip or the mesh hint).
  const holders = await routable(pods, pods[2], 'k8s-room');
  assert.equal(holders.length, 3, `members on every pod (${holders})`);
  const got = sockets.map((x) => collector(x.s, 'news'));
  const emitted = await rest(third, '/emit', { rooms: ['k8s-room'], event: 'news', args: ['one emit, three pods'] });
  assert.equal(emitted.status, 202, JSON.stringify(emitted.body));
  for (const [i, c] of got.entries()) {
    const seen = await c.until(1, 15000);
    assert.deepEqual(seen[0], ['one emit, three pods'], `client ${i} on ${sockets[i].pod}`);
  }
  assert.equal(new Set(sockets.map((x) => x.pod)).size, 3, 'clients were on three pods');
  state.sockets = sockets;
});

test('/metrics is scraped from every hub pod and from the operator', async (t) => {
  if (!state.ready) return t.skip('the hub never became Ready');
  for (const p of await hubPods()) {
    const text = await getText(`http://${p.status.podIP}:9090/metrics`);
    assert.match(text, /^socketio_hub_connections\{/m, `${p.metadata.name}: connections gauge`);
    assert.match(text, /^socketio_hub_cluster_peers 2$/m, `${p.metadata.name}: two cluster peers`);
  }
  const ops = await kjson('-n', OPERATOR_NS, 'get', 'pods', '-l', 'app.kubernetes.io/name=socketio-hub-operator');
  assert.equal(ops.items.length, 1);
  const op = ops.items[0];
  assert.ok(podReady(op), 'the operator pod is Ready');
  const text = await getText(`http://${op.status.podIP}:8080/metrics`);
  assert.match(text, /^socketio_hub_operator_hubs\{condition="Ready"\} 1$/m);
  assert.match(text, /^socketio_hub_operator_reconciles_total\{result="ok"\} [1-9]/m);
  assert.match(text, /^socketio_hub_operator_leader 1$/m);
});

test('deleting a pod makes Ready go False (or Progressing) and come back True by itself', async (t) => {
  if (!state.ready) return t.skip('the hub never became Ready');
  for (const x of state.sockets || []) x.s.disconnect();
  const before = await hubPods();
  const victim = before[1];
  const t0 = Date.now();
  await kubectl(['-n', NS, 'delete', 'pod', victim.metadata.name, '--wait=false']);
  const seen = await until('Ready=False or Progressing=True', async () => {
    const hub = await kjson('-n', NS, 'get', 'socketiohub', HUB);
    const ready = condition(hub, 'Ready');
    const progressing = condition(hub, 'Progressing');
    if (ready?.status === 'False') return `Ready=False (${ready.reason})`;
    if (progressing?.status === 'True') return `Progressing=True (${progressing.reason})`;
    return null;
  }, 60000, 150);
  console.log(`NOTE after deleting ${victim.metadata.name}: ${seen}`);
  await kubectl(['-n', NS, 'wait', '--for=condition=Ready', `socketiohub/${HUB}`, '--timeout=180s']);
  const pods = await hubPods();
  const back = pods.find((p) => !before.some((b) => b.metadata.uid === p.metadata.uid));
  assert.ok(back && podReady(back), 'a new pod took its place and is Ready');
  assert.ok(!pods.some((p) => p.metadata.uid === victim.metadata.uid), 'the deleted pod is gone');
  measure('pod_delete_to_ready_ms', Date.now() - t0);
  // And it rejoined the cluster.
  await until(`${back.metadata.name} to see two peers`, async () => {
    const view = await getJson(`http://${back.status.podIP}:9090/cluster`);
    return view.peers.filter((p) => p.ready).length === 2;
  }, 150000, 500);
});

test('a spec change rolls the pods one by one; clients reconnect through the Service; a broadcast after it reaches all', async (t) => {
  if (!state.ready) return t.skip('the hub never became Ready');
  const svc = await kjson('-n', NS, 'get', 'service', HUB);
  const url = `http://${svc.spec.clusterIP}:${svc.spec.ports[0].port}`;
  // Through the client Service (kube-proxy picks a pod per connection; no affinity needed).
  const fleet = [];
  for (let i = 0; i < 9; i++) {
    const transports = i % 3 === 2 ? ['polling', 'websocket'] : ['websocket'];
    const s = await clients.connect(url, { transports, reconnection: true, reconnectionDelay: 200, reconnectionDelayMax: 1000 });
    fleet.push(s);
  }
  let drops = 0;
  for (const s of fleet) s.on('disconnect', () => { drops++; });
  const before = new Set((await hubPods()).map((p) => p.metadata.uid));
  const deploymentBefore = await kjson('-n', NS, 'get', 'deployment', HUB);
  const t0 = Date.now();
  await kubectl(['apply', '-f', '-'], hubYaml('debug'));
  // Watch: never more than one pod down at a time; every pod replaced.
  let minReady = 3;
  const replaced = new Map();
  await until('the rollout to finish', async () => {
    const pods = await kjson('-n', NS, 'get', 'pods', '-l', `app.kubernetes.io/instance=${HUB}`);
    const ready = pods.items.filter((p) => podReady(p) && !p.metadata.deletionTimestamp).length;
    minReady = Math.min(minReady, ready);
    // An old pod is replaced once it is gone (a Deployment's new pods have new names).
    const live = new Set(pods.items.map((p) => p.metadata.uid));
    for (const uid of before) if (!live.has(uid) && !replaced.has(uid)) replaced.set(uid, Date.now() - t0);
    const d = await kjson('-n', NS, 'get', 'deployment', HUB);
    const hub = await kjson('-n', NS, 'get', 'socketiohub', HUB);
    return d.metadata.generation !== deploymentBefore.metadata.generation
      && d.status.observedGeneration === d.metadata.generation
      && d.status.updatedReplicas === 3 && d.status.replicas === 3 && d.status.readyReplicas === 3
      && replaced.size === 3
      && hub.status.observedGeneration === hub.metadata.generation
      && condition(hub, 'Ready')?.status === 'True';
  }, 400000, 300);
  measure('rolling_update_3_pods_ms', Date.now() - t0);
  console.log(`NOTE replaced (ms after the apply): ${JSON.stringify(Object.fromEntries(replaced))}; fewest ready pods during the rollout: ${minReady}; client disconnects: ${drops}`);
  assert.equal(replaced.size, 3, 'every pod was replaced');
  assert.ok(minReady >= 2, `at most one pod was down at a time (fewest ready: ${minReady})`);
  // Every client is connected again (to a new pod), by itself.
  await until('all 9 clients connected', () => fleet.every((s) => s.connected), 60000, 200);
  const secret = await kjson('-n', NS, 'get', 'secret', `${HUB}-access-keys`);
  accessKey = Buffer.from(secret.data.primaryKey, 'base64').toString();
  const pods = await hubPods();
  const anyPod = `http://${pods[0].status.podIP}:3000`;
  const joined = await rest(anyPod, '/sockets/join', { sockets: fleet.map((s) => s.id), join: ['after-rollout'] });
  assert.equal(joined.status, 200, JSON.stringify(joined.body));
  assert.equal(joined.body.matched, fleet.length);
  console.log(`NOTE after the rollout the clients are on ${(await routable(pods, pods[2], 'after-rollout')).join(', ')}`);
  const got = fleet.map((s) => collector(s, 'after'));
  const emitted = await rest(`http://${pods[2].status.podIP}:3000`, '/emit', { rooms: ['after-rollout'], event: 'after', args: ['rolled'] });
  assert.equal(emitted.status, 202);
  for (const c of got) assert.deepEqual((await c.until(1, 15000))[0], ['rolled']);
  for (const s of fleet) s.disconnect();
});

// Default mode: one application server through the SDK, linked through the client Service to
// whichever pod kube-proxy picks, serves clients on every pod (sessions bound across nodes).
// SIOH_K8S_LINK=0 skips it.
test('an app server through the SDK (default mode) serves clients on every pod', {
  skip: process.env.SIOH_K8S_LINK === '0' ? 'SIOH_K8S_LINK=0' : false,
}, async (t) => {
  if (!state.ready) return t.skip('the hub never became Ready');
  const { Server } = require('socket.io');
  const { useHub } = require('../../sdk/node');
  await kubectl(['-n', NS, 'patch', 'socketiohub', HUB, '--type=merge', '-p', '{"spec":{"upstream":{"mode":"Link"}}}']);
  await kubectl(['-n', NS, 'wait', '--for=condition=Ready', `socketiohub/${HUB}`, '--timeout=300s']);
  await until('a rollout to Link mode', async () => {
    const d = await kjson('-n', NS, 'get', 'deployment', HUB);
    return d.status.observedGeneration === d.metadata.generation && d.status.updatedReplicas === 3
      && d.status.replicas === 3 && d.status.readyReplicas === 3;
  }, 300000, 500);
  const secret = await kjson('-n', NS, 'get', 'secret', `${HUB}-access-keys`);
  const svc = await kjson('-n', NS, 'get', 'service', HUB);
  const key = Buffer.from(secret.data.primaryKey, 'base64').toString();
  const io = new Server();
  const link = useHub(io, { connectionString: `Endpoint=http://${svc.spec.clusterIP}:${svc.spec.ports[0].port};AccessKey=${key};` });
  await link.ready;
  io.on('connection', (socket) => socket.on('echo', (v, ack) => ack(`app:${v}`)));
  try {
    for (const p of await hubPods()) {
      const s = await clients.connect(`http://${p.status.podIP}:3000`, { transports: ['websocket'] });
      assert.equal(await s.timeout(10000).emitWithAck('echo', p.metadata.name), `app:${p.metadata.name}`);
      s.disconnect();
    }
  } finally {
    io.close();
  }
});

test('deleting the hub garbage-collects its Deployment, ReplicaSets, pods, Services, ConfigMap, Secret and PDB', async (t) => {
  if (!state.ready) return t.skip('the hub never became Ready');
  clients.closeAll();
  const t0 = Date.now();
  await kubectl(['-n', NS, 'delete', 'socketiohub', HUB, '--wait=true', '--timeout=120s']);
  const kinds = 'deployments,replicasets,pods,services,configmaps,secrets,poddisruptionbudgets';
  await until('every object of the hub to be gone', async () => {
    const left = await kjson('-n', NS, 'get', kinds, '-l', `app.kubernetes.io/instance=${HUB}`);
    return left.items.length === 0 || null;
  }, 180000, 500);
  measure('hub_delete_to_collected_ms', Date.now() - t0);
});

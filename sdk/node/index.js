'use strict';
// @socketio-hub/sdk: run an unchanged socket.io 4.x server behind socketio-hub.
//
//   const { useHub } = require('@socketio-hub/sdk');
//   useHub(io, { connectionString: process.env.SOCKETIO_HUB_CONNECTION_STRING });
//
// useHub binds `io` to a virtual engine fed by a server link to the hub (lib/engine.js),
// replaces its adapter by one that sends room operations and broadcasts to the hub
// (lib/adapter.js), and makes socket.io use the socket ids the hub proposes, so a client
// re-bound to another application server keeps its id and rooms.

const { Link } = require('./lib/link');
const { VirtualEngine, kWanted } = require('./lib/engine');
const { makeAdapter } = require('./lib/adapter');
const { HubError, HubUnsupportedError } = require('./lib/errors');
const { parseConnectionString, linkToken, signToken } = require('./lib/connection');

const kHub = Symbol('socketio-hub');
const kPatched = Symbol('socketio-hub.patched');

/** Make socket.io give a socket the id (and rooms, claims) the hub proposed for it. */
function patchNamespace(io) {
  const proto = Object.getPrototypeOf(io.of('/'));
  if (proto[kPatched]) return;
  if (typeof proto._createSocket !== 'function') {
    throw new HubError('useHub needs socket.io >= 4.6 (Namespace#_createSocket is missing)', 'SOCKET_IO_VERSION');
  }
  const original = proto._createSocket;
  proto._createSocket = async function createSocket(client, auth) {
    const socket = await original.call(this, client, auth);
    const wanted = client.conn && client.conn[kWanted] && client.conn[kWanted].get(this.name);
    if (wanted) {
      client.conn[kWanted].delete(this.name);
      socket.id = wanted.id;
      if (wanted.claims) socket.handshake.claims = wanted.claims;
      if (wanted.rooms.length && typeof this.adapter.localAdd === 'function') {
        this.adapter.localAdd(wanted.id, wanted.rooms);
      }
    }
    return socket;
  };
  proto[kPatched] = true;
}

/** Decode one encoded Socket.IO packet (text + attachments) with io's own parser. */
function decodePacket(io, text, bins) {
  const decoder = new io._parser.Decoder();
  let packet = null;
  decoder.on('decoded', (p) => { packet = p; });
  decoder.add(text);
  for (const b of bins) decoder.add(b);
  decoder.destroy();
  return packet;
}

class Hub {
  constructor(io, link) {
    this.io = io;
    this.link = link;
    this.engine = new VirtualEngine(link);
    this.requests = new Map();
    this.nextReq = 1;
    link.on('message', (msg, bins) => this.onMessage(msg, bins));
    link.on('down', () => {
      // The hub re-binds our sessions to other servers (or holds them): ours end here.
      this.engine.dropAll('transport close');
      for (const [req, r] of this.requests) {
        this.requests.delete(req);
        clearTimeout(r.timer);
        if (r.onTimeout) r.onTimeout();
      }
    });
  }

  send(msg, bins) {
    return this.link.send(msg, bins);
  }

  /** Register a request the hub answers with `reply` (and `ack`s); returns its id. */
  request(r) {
    const req = this.nextReq++;
    r.timer = setTimeout(() => {
      this.requests.delete(req);
      if (r.onTimeout) r.onTimeout();
    }, r.timeout);
    r.timer.unref?.();
    this.requests.set(req, r);
    return req;
  }

  forget(req) {
    const r = this.requests.get(req);
    if (r) {
      clearTimeout(r.timer);
      this.requests.delete(req);
    }
  }

  onMessage(msg, bins) {
    const clients = this.engine.clients;
    switch (msg.t) {
      case 'hello':
        this.link.log('info', `server link up: hub node ${msg.node}, instance ${msg.instance}, protocol v${msg.v}`);
        this.link.emit('ready', msg);
        break;
      case 'open':
        this.engine.open(msg);
        break;
      case 'connect': {
        const s = clients.get(msg.sid);
        if (s) s.connectSocket(msg);
        break;
      }
      case 'packet': {
        const s = clients.get(msg.sid);
        if (s) s.feed(msg.data, bins);
        break;
      }
      case 'disconnect': {
        const socket = this.io._nsps.get(msg.nsp) && this.io._nsps.get(msg.nsp).sockets.get(msg.id);
        if (socket) socket._onclose(msg.reason);
        break;
      }
      case 'close': {
        const s = clients.get(msg.sid);
        if (s) s.closedByHub(msg.reason);
        break;
      }
      case 'rooms': {
        const nsp = this.io._nsps.get(msg.nsp);
        if (nsp && nsp.adapter.localAdd) {
          if (msg.join) nsp.adapter.localAdd(msg.id, msg.join);
          if (msg.leave) nsp.adapter.localDel(msg.id, msg.leave);
        }
        // A join of this server's the hub refused (`limits.rooms_per_socket`): `leave` undid it.
        if (msg.refused) this.link.log('warn', `socket ${msg.id} did not join ${JSON.stringify(msg.leave)}: ${msg.refused}`);
        break;
      }
      case 'reply': {
        const r = this.requests.get(msg.req);
        if (!r) break;
        if (!r.onAck) this.forget(msg.req);
        r.onReply(msg);
        break;
      }
      case 'ack': {
        const r = this.requests.get(msg.req);
        const p = r && decodePacket(this.io, msg.data, bins);
        if (p) r.onAck(p.data || []);
        break;
      }
      case 'ssemit':
        this.onServerSideEmit(msg, bins);
        break;
      case 'fetchData': {
        const nsp = this.io._nsps.get(msg.nsp);
        const data = {};
        for (const id of msg.ids) {
          const s = nsp && nsp.sockets.get(id);
          if (s) data[id] = s.data === undefined ? {} : s.data;
        }
        this.send({ t: 'reply', req: msg.req, data });
        break;
      }
      default:
        this.link.log('warn', `ignoring unknown link message type ${JSON.stringify(msg.t)}`);
    }
  }

  onServerSideEmit(msg, bins) {
    const nsp = this.io._nsps.get(msg.nsp);
    const p = decodePacket(this.io, msg.data, bins);
    if (!nsp || !p) return;
    const args = p.data;
    if (msg.req != null) {
      let answered = false;
      args.push((...reply) => {
        if (answered) return;
        answered = true;
        const [text, ...out] = this.io.encoder.encode({ type: 3, nsp: msg.nsp, id: msg.req, data: reply });
        this.send({ t: 'ssAck', req: msg.req, data: text }, out);
      });
    }
    nsp._onServerSideEmit(args);
  }
}

/**
 * Serve `io`'s clients through socketio-hub. Call once, before clients connect.
 * @param {import('socket.io').Server} io
 * @param {{connectionString?: string, name?: string, logger?: object|null}} [options]
 * @returns {{ready: Promise<object>, close(): void, link: Link}}
 */
function useHub(io, options = {}) {
  if (!io || typeof io.bind !== 'function' || typeof io.of !== 'function') {
    throw new HubError('useHub(io): io must be a socket.io 4.x Server', 'BAD_ARGUMENT');
  }
  if (io[kHub]) throw new HubError('useHub(io) was already called for this server', 'BAD_ARGUMENT');
  const text = options.connectionString || process.env.SOCKETIO_HUB_CONNECTION_STRING;
  if (!text) {
    throw new HubError('useHub: no connection string; pass { connectionString } or set SOCKETIO_HUB_CONNECTION_STRING', 'BAD_CONNECTION_STRING');
  }
  const { endpoint, accessKey } = parseConnectionString(text);
  if (io.opts && io.opts.connectionStateRecovery) {
    throw new HubUnsupportedError('the connectionStateRecovery option',
      'the hub holds the connections; enable socketio.recovery in the hub configuration instead');
  }
  const current = io.of('/').adapter;
  const Base = Object.getPrototypeOf(current).constructor;
  if (Base.name !== 'Adapter') {
    throw new HubUnsupportedError(`io.adapter(${Base.name})`,
      'the hub is the adapter: it fans messages out between servers itself; remove the custom adapter');
  }
  const link = new Link({ endpoint, accessKey, name: options.name, logger: options.logger });
  const hub = new Hub(io, link);
  io[kHub] = hub;
  patchNamespace(io);
  io.adapter(makeAdapter(Base, hub));
  io.bind(hub.engine);
  const ready = new Promise((resolve, reject) => {
    link.once('ready', resolve);
    link.once('fatal', reject);
  });
  // A fatal refusal is reported through `ready` and the log; don't crash apps that ignore it.
  ready.catch(() => {});
  link.on('fatal', (err) => {
    if (link.listenerCount('fatal') === 1 && options.onFatal) options.onFatal(err);
  });
  link.start();
  return { ready, link, close: () => hub.engine.close() };
}

module.exports = { useHub, parseConnectionString, linkToken, signToken, HubError, HubUnsupportedError };

'use strict';
// The virtual Engine.IO server socket.io is bound to (`io.bind(engine)`). Each client session the
// hub binds to this application server becomes a `VirtualSocket` that looks to socket.io's
// Client like an engine.io Socket: `id`, `request`, `remoteAddress`, `transport.name`,
// `readyState`, `write()`/`send()`, `close()`, and `data`/`close` events. Heartbeats and
// transport upgrades stay in the hub, so socket.io's own Client, Namespace and Socket classes,
// middlewares, acks and binary handling run unchanged.
//
// Invariant: a binary packet socket.io writes (a text header announcing N attachments, then N
// buffers, written synchronously) leaves as one link message with its N binary frames.

const { EventEmitter } = require('node:events');
const { HubUnsupportedError } = require('./errors');

const kWanted = Symbol('socketio-hub.wanted');

/** Attachments announced by an encoded Socket.IO packet (`51-…`, `61-…`). */
function attachmentsOf(text) {
  const t = text.charCodeAt(0);
  if (t !== 53 && t !== 54) return 0; // '5' BINARY_EVENT, '6' BINARY_ACK
  const dash = text.indexOf('-');
  return dash > 1 ? Number(text.slice(1, dash)) : 0;
}

/** The namespace of an encoded packet (`/` when absent). */
function nspOf(text) {
  let i = 1;
  if (text.charCodeAt(0) === 53 || text.charCodeAt(0) === 54) i = text.indexOf('-') + 1;
  if (text[i] !== '/') return '/';
  const comma = text.indexOf(',', i);
  return comma === -1 ? text.slice(i) : text.slice(i, comma);
}

// engine.io events the hub never reports to application servers.
const ENGINE_EVENTS_UNAVAILABLE = {
  initial_headers: 'the hub answers the HTTP handshake; set headers (CORS, cookies) in the hub configuration',
  headers: 'the hub answers HTTP requests',
  connection_error: 'the hub refuses bad Engine.IO requests itself (see its metrics)',
};
const SOCKET_EVENTS_UNAVAILABLE = {
  upgrade: 'transport upgrades happen in the hub and are not reported over the server link',
  upgrading: 'transport upgrades happen in the hub and are not reported over the server link',
  packet: 'Engine.IO packets (heartbeats) stay in the hub',
  packetCreate: 'Engine.IO packets (heartbeats) stay in the hub',
  heartbeat: 'heartbeats stay in the hub',
  drain: 'write buffers are the hub\'s',
};

class VirtualSocket extends EventEmitter {
  constructor(engine, msg) {
    super();
    const hs = msg.handshake || {};
    this.server = engine;
    this.id = msg.sid;
    this.protocol = 4;
    this.readyState = 'open';
    this.remoteAddress = hs.address;
    this.upgraded = msg.transport === 'websocket';
    this.transport = { name: msg.transport || 'polling', writable: true };
    this.request = {
      method: 'GET',
      url: hs.url,
      headers: hs.headers || {},
      _query: hs.query || {},
      connection: { encrypted: false, remoteAddress: hs.address },
      socket: { encrypted: false, remoteAddress: hs.address },
    };
    this[kWanted] = new Map(); // nsp → { id, claims, rooms } proposed by the hub
    this.ids = new Set(); // `${nsp}\0${socket id}` of the sockets the hub connected here
    this.held = new Map(); // nsp → packets held until a re-bound socket is connected again
    this.outgoing = null; // binary packet being written: { data, bins, need, opts }
  }

  on(event, listener) {
    if (Object.hasOwn(SOCKET_EVENTS_UNAVAILABLE, event)) {
      throw new HubUnsupportedError(`socket.conn.on("${event}")`, SOCKET_EVENTS_UNAVAILABLE[event]);
    }
    return super.on(event, listener);
  }

  /** socket.io writes encoded packets here (a string, then its binary attachments). */
  write(data, opts, cb) {
    if (typeof opts === 'function') { cb = opts; opts = {}; }
    if (this.readyState !== 'open') return this;
    if (typeof data === 'string') {
      const need = attachmentsOf(data);
      if (need > 0) {
        this.outgoing = { data, bins: [], need, opts: opts || {} };
      } else {
        this.emitPacket(data, [], opts || {});
      }
    } else if (this.outgoing) {
      const o = this.outgoing;
      o.bins.push(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer ? data.buffer : data));
      if (o.bins.length === o.need) {
        this.outgoing = null;
        this.emitPacket(o.data, o.bins, o.opts);
      }
    }
    if (cb) process.nextTick(cb);
    return this;
  }

  send(data, opts, cb) {
    return this.write(data, opts, cb);
  }

  emitPacket(data, bins, opts) {
    const msg = { t: 'packet', sid: this.id, data };
    if (opts.volatile) msg.volatile = true;
    this.server.link.send(msg, bins);
    const type = data[0];
    if ((type === '0' || type === '4') && this.held.size) {
      // A re-bound socket answered (or was refused): release what the client sent meanwhile,
      // after socket.io has registered the socket (it does right after writing CONNECT).
      const nsp = nspOf(data);
      const held = this.held.get(nsp);
      if (held) {
        this.held.delete(nsp);
        if (type === '0') process.nextTick(() => { for (const p of held) this.feed(p.data, p.bins); });
      }
    }
  }

  /** Hand a client packet to socket.io. */
  feed(data, bins) {
    if (this.readyState !== 'open') return;
    const held = this.held.size ? this.held.get(nspOf(data)) : undefined;
    if (held) {
      held.push({ data, bins });
      return;
    }
    this.emit('data', data);
    for (const b of bins) this.emit('data', b);
  }

  /** The hub asks this server to connect a socket (fresh, or re-bound from another server). */
  connectSocket(msg) {
    this[kWanted].set(msg.nsp, { id: msg.id, claims: msg.claims, rooms: msg.rooms || [] });
    // A recovered socket may come back on another hub node before this server hears that its
    // old session ended: end the old one first, or its late close would remove the new socket
    // (socket.io keys sockets and rooms by socket id).
    const key = `${msg.nsp}\0${msg.id}`;
    const old = this.server.socketIds.get(key);
    if (old && old !== this && msg.recovered) old.closedByHub('transport close');
    this.server.socketIds.set(key, this);
    this.ids.add(key);
    if (msg.rebind) this.held.set(msg.nsp, []);
    const prefix = msg.nsp === '/' ? '' : `${msg.nsp},`;
    this.emit('data', `0${prefix}${JSON.stringify(msg.auth || {})}`);
  }

  forget() {
    for (const key of this.ids) {
      if (this.server.socketIds.get(key) === this) this.server.socketIds.delete(key);
    }
  }

  /** socket.io closes the session (`socket.disconnect(true)`, connect timeout). */
  close() {
    if (this.readyState !== 'open') return;
    this.forget();
    this.readyState = 'closed';
    this.server.link.send({ t: 'close', sid: this.id });
    this.server.clients.delete(this.id);
    // Like engine.io, report the close after socket.io's Client has handled its own side.
    process.nextTick(() => this.emit('close', 'forced close'));
  }

  /** The hub closed the session (or the link went down). */
  closedByHub(reason) {
    if (this.readyState !== 'open') return;
    this.forget();
    this.readyState = 'closed';
    this.server.clients.delete(this.id);
    this.emit('close', reason);
  }
}

class VirtualEngine extends EventEmitter {
  constructor(link) {
    super();
    this.link = link;
    this.clients = new Map();
    this.socketIds = new Map(); // `${nsp}\0${socket id}` → the VirtualSocket that connected it
    this.opts = {};
  }

  get clientsCount() {
    return this.clients.size;
  }

  on(event, listener) {
    if (Object.hasOwn(ENGINE_EVENTS_UNAVAILABLE, event)) {
      throw new HubUnsupportedError(`io.engine.on("${event}")`, ENGINE_EVENTS_UNAVAILABLE[event]);
    }
    return super.on(event, listener);
  }

  /** A session bound to this server. */
  open(msg) {
    const old = this.clients.get(msg.sid);
    if (old) old.closedByHub('transport close');
    const socket = new VirtualSocket(this, msg);
    this.clients.set(msg.sid, socket);
    this.emit('connection', socket);
    return socket;
  }

  /** Every session ends (the link went down: the hub re-binds them elsewhere). */
  dropAll(reason) {
    for (const s of [...this.clients.values()]) s.closedByHub(reason);
  }

  close() {
    this.link.close();
    this.dropAll('server shutting down');
  }
}

module.exports = { VirtualEngine, VirtualSocket, attachmentsOf, nspOf, kWanted };

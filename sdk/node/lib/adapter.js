'use strict';
// The socket.io Adapter behind the hub. socket.io's in-memory adapter still keeps this server's
// view of its own sockets' rooms (`socket.rooms`), but the hub is the room authority: joins and
// leaves are sent to it, and broadcasts, socketsJoin/Leave, disconnectSockets, fetchSockets and
// serverSideEmit become link messages the hub carries out for every socket on every server, so
// each broadcast is encoded once, by the hub.
//
// Invariant: every operation is one message on the one link, sent synchronously when socket.io
// calls the adapter, so the hub applies them in call order (`socket.join(r)` without `await`,
// then `io.to(r).emit(…)`, reaches the socket).

const { HubUnsupportedError } = require('./errors');

const DEFAULT_ACK_TIMEOUT = 10000;

/** Hub nodes that did not answer in time (a reply's `missing`), logged once per call. */
function reportMissing(hub, what, m) {
  if (!m.missing || !m.missing.length) return false;
  if (hub.link && typeof hub.link.log === 'function') {
    hub.link.log('warn', `${what}: hub nodes ${m.missing.join(', ')} did not answer in time`);
  }
  return true;
}

function makeAdapter(BaseAdapter, hub) {
  return class HubAdapter extends BaseAdapter {
    /** Local bookkeeping only (rooms the hub already applied). */
    localAdd(id, rooms) {
      super.addAll(id, new Set(rooms));
    }

    localDel(id, rooms) {
      for (const r of rooms) super.del(id, r);
    }

    sidOf(id) {
      const s = this.nsp.sockets.get(id) || (this.nsp._preConnectSockets && this.nsp._preConnectSockets.get(id));
      return s && s.client && s.client.conn ? s.client.conn.id : undefined;
    }

    addAll(id, rooms) {
      super.addAll(id, rooms);
      const list = [...rooms].filter((r) => r !== id);
      if (list.length) hub.send({ t: 'join', nsp: this.nsp.name, id, sid: this.sidOf(id), rooms: list });
    }

    del(id, room) {
      super.del(id, room);
      if (room !== id) hub.send({ t: 'leave', nsp: this.nsp.name, id, sid: this.sidOf(id), rooms: [room] });
    }

    // delAll: the hub removes a socket from its rooms when the socket goes, so only local state.

    target(opts) {
      const flags = opts.flags || {};
      if (flags.local) {
        throw new HubUnsupportedError('local (io.local / socket.local)',
          'every application server reaches every client through the hub; there is no "this server only" set of clients');
      }
      return { nsp: this.nsp.name, rooms: [...(opts.rooms || [])], except: [...(opts.except || [])] };
    }

    encode(data) {
      const [text, ...bins] = this.encoder.encode({ type: 2, nsp: this.nsp.name, data });
      return { text, bins };
    }

    broadcast(packet, opts) {
      const msg = this.target(opts);
      const { text, bins } = this.encode(packet.data);
      msg.t = 'broadcast';
      msg.data = text;
      if (opts.flags && opts.flags.volatile) msg.volatile = true;
      hub.send(msg, bins);
    }

    broadcastWithAck(packet, opts, clientCountCallback, ack) {
      const msg = this.target(opts);
      const { text, bins } = this.encode(packet.data);
      const timeout = (opts.flags && opts.flags.timeout) || DEFAULT_ACK_TIMEOUT;
      msg.t = 'broadcast';
      msg.data = text;
      msg.timeout = timeout;
      if (opts.flags && opts.flags.volatile) msg.volatile = true;
      msg.req = hub.request({
        timeout: timeout + 1000,
        // A node that did not say how many clients it asked: the count is unknown, so the
        // call ends at its timeout with the answers received (as socket.io does when a server
        // of its cluster does not answer).
        onReply: (m) => { if (!reportMissing(hub, 'broadcast with acks', m)) clientCountCallback(m.count); },
        onAck: (args) => ack(...args),
      });
      hub.send(msg, bins);
    }

    serverCount() {
      // The hub answers for every client on every server: one count, one set of responses.
      return Promise.resolve(1);
    }

    fetchSockets(opts) {
      const msg = this.target(opts);
      msg.t = 'fetchSockets';
      return new Promise((resolve, reject) => {
        msg.req = hub.request({
          timeout: 10000,
          onReply: (m) => {
            // The sockets of the nodes that answered in time (the others are logged).
            reportMissing(hub, 'fetchSockets', m);
            resolve(m.sockets.map((d) => (d.local && this.nsp.sockets.get(d.id)) || {
              id: d.id,
              handshake: d.handshake,
              rooms: d.rooms,
              data: d.data === undefined ? {} : d.data,
            }));
          },
          onTimeout: () => reject(new Error('fetchSockets: the hub did not answer in 10 s')),
        });
        if (!hub.send(msg)) reject(new Error('fetchSockets: the server link to the hub is down'));
      });
    }

    async sockets(rooms) {
      const sockets = await this.fetchSockets({ rooms, except: new Set() });
      return new Set(sockets.map((s) => s.id));
    }

    addSockets(opts, rooms) {
      hub.send({ t: 'socketsJoin', ...this.target(opts), targets: [...rooms] });
    }

    delSockets(opts, rooms) {
      hub.send({ t: 'socketsLeave', ...this.target(opts), targets: [...rooms] });
    }

    disconnectSockets(opts, close) {
      hub.send({ t: 'disconnectSockets', ...this.target(opts), close: !!close });
    }

    serverSideEmit(packet) {
      const withAck = typeof packet[packet.length - 1] === 'function';
      const ack = withAck ? packet.pop() : null;
      const { text, bins } = this.encode(packet);
      const msg = { t: 'serverSideEmit', nsp: this.nsp.name, data: text };
      if (ack) {
        const timeout = (this.nsp._flags && this.nsp._flags.timeout) || DEFAULT_ACK_TIMEOUT;
        const responses = [];
        let expected = -1;
        let done = false;
        const finish = (err) => {
          if (done) return;
          done = true;
          hub.forget(msg.req);
          ack(err, responses);
        };
        msg.timeout = timeout;
        msg.req = hub.request({
          timeout,
          onReply: (m) => {
            if (reportMissing(hub, 'serverSideEmit', m)) return;
            expected = m.count;
            if (responses.length >= expected) finish(null);
          },
          onAck: (args) => {
            responses.push(args[0]);
            if (expected >= 0 && responses.length >= expected) finish(null);
          },
          onTimeout: () => finish(new Error(`timeout reached: only ${responses.length} responses received out of ${expected}`)),
        });
      }
      if (!hub.send(msg, bins) && ack) {
        hub.forget(msg.req);
        ack(new Error('serverSideEmit: the server link to the hub is down'), []);
      }
    }

    persistSession() {
      throw new HubUnsupportedError('connectionStateRecovery', 'the hub holds the connections; enable socketio.recovery in the hub configuration');
    }

    restoreSession() {
      return Promise.resolve(null);
    }
  };
}

module.exports = { makeAdapter };

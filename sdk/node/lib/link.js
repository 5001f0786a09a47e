'use strict';
// The server link: one WebSocket from this application server to the hub (it dials out, so the
// app needs no inbound exposure). Messages are JSON texts with a `t` type, each followed by
// `bin` binary messages (docs/link-protocol.md). Reconnects with exponential backoff and logs
// why; a refusal the hub explains (wrong key, link mode off, bad version) is fatal, not retried.

const { EventEmitter } = require('node:events');
const os = require('node:os');
const WebSocket = require('ws');
const { HubError } = require('./errors');
const { linkToken, linkUrl } = require('./connection');

const FATAL_STATUS = new Set([400, 401, 403, 404]);

class Link extends EventEmitter {
  /**
   * @param {{endpoint: string, accessKey: string, name?: string, logger?: object,
   *          minDelay?: number, maxDelay?: number}} opts
   */
  constructor(opts) {
    super();
    this.endpoint = opts.endpoint;
    this.accessKey = opts.accessKey;
    this.name = opts.name || `${os.hostname()}:${process.pid}`;
    this.logger = opts.logger === undefined ? console : opts.logger;
    this.minDelay = opts.minDelay ?? 250;
    this.maxDelay = opts.maxDelay ?? 10000;
    this.ws = null;
    this.open = false;
    this.closing = false;
    this.attempt = 0;
    this.timer = null;
    this.partial = null; // { msg, bins } while a message's attachments are arriving
    this.nextReq = 1;
  }

  log(level, text) {
    if (this.logger && typeof this.logger[level] === 'function') this.logger[level](`[socketio-hub] ${text}`);
  }

  start() {
    this.closing = false;
    this.connect();
  }

  connect() {
    this.timer = null;
    const url = linkUrl(this.endpoint, this.name);
    const ws = new WebSocket(url, {
      headers: { Authorization: `Bearer ${linkToken(this.accessKey)}` },
      perMessageDeflate: false,
      handshakeTimeout: 10000,
    });
    this.ws = ws;
    ws.on('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => {
        let message = body;
        try { message = JSON.parse(body).error || body; } catch { /* not JSON */ }
        const why = `the hub refused the server link (HTTP ${res.statusCode}): ${message}`;
        ws.terminate();
        if (FATAL_STATUS.has(res.statusCode)) {
          this.closing = true;
          const err = new HubError(why, res.statusCode === 401 ? 'UNAUTHORIZED' : 'REFUSED');
          this.log('error', `${why} — not retrying`);
          this.emit('fatal', err);
        } else {
          this.retry(why);
        }
      });
    });
    ws.on('open', () => {
      this.open = true;
      this.attempt = 0;
      this.partial = null;
    });
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.on('error', (err) => {
      this.lastError = err;
    });
    ws.on('close', (code, reason) => {
      const wasOpen = this.open;
      this.open = false;
      if (this.ws !== ws) return;
      this.ws = null;
      if (wasOpen) this.emit('down');
      if (this.closing) return;
      const why = this.lastError ? this.lastError.message : `closed (${code}${reason && reason.length ? ` ${reason}` : ''})`;
      this.lastError = null;
      this.retry(why);
    });
  }

  retry(why) {
    if (this.closing || this.timer) return;
    const delay = Math.min(this.maxDelay, this.minDelay * 2 ** Math.min(this.attempt, 10));
    const jittered = Math.round(delay * (0.5 + Math.random() / 2));
    this.attempt += 1;
    this.log('warn', `server link to ${this.endpoint} down: ${why}; retrying in ${jittered} ms`);
    this.timer = setTimeout(() => this.connect(), jittered);
    this.timer.unref?.();
  }

  onMessage(data, isBinary) {
    if (isBinary) {
      if (!this.partial) {
        this.log('error', 'protocol error: binary message with no message announcing it');
        return;
      }
      this.partial.bins.push(data);
      if (this.partial.bins.length === this.partial.msg.bin) {
        const { msg, bins } = this.partial;
        this.partial = null;
        this.dispatch(msg, bins);
      }
      return;
    }
    let msg;
    try {
      msg = JSON.parse(data.toString());
    } catch {
      this.log('error', 'protocol error: a link message is not JSON');
      return;
    }
    if (msg.bin > 0) {
      this.partial = { msg, bins: [] };
      return;
    }
    this.dispatch(msg, []);
  }

  dispatch(msg, bins) {
    if (msg.t === 'ping') {
      this.send({ t: 'pong', ts: msg.ts });
      return;
    }
    if (msg.t === 'error') {
      this.log('error', `the hub reports a protocol error: ${msg.message}`);
      return;
    }
    this.emit('message', msg, bins);
  }

  /** Send a message and its attachments; returns false when the link is down. */
  send(msg, bins) {
    const ws = this.ws;
    if (!ws || !this.open) return false;
    if (bins && bins.length) msg.bin = bins.length;
    ws.send(JSON.stringify(msg));
    if (bins) for (const b of bins) ws.send(b);
    return true;
  }

  close() {
    this.closing = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.ws) this.ws.close(1000, 'application server closing');
  }
}

module.exports = { Link };

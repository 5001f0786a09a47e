'use strict';
// Connection strings (`Endpoint=http(s)://host[:port];AccessKey=<key>;`) and the HS256 JWT the
// server link presents. No dependency: node:crypto does HMAC-SHA256.

const crypto = require('node:crypto');
const { HubError } = require('./errors');

/** Parse `Endpoint=…;AccessKey=…;` (keys case-insensitive, order free). */
function parseConnectionString(text) {
  if (typeof text !== 'string' || !text.trim()) {
    throw new HubError('the connection string is empty', 'BAD_CONNECTION_STRING');
  }
  const fields = {};
  for (const part of text.split(';')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    fields[part.slice(0, i).trim().toLowerCase()] = part.slice(i + 1).trim();
  }
  const endpoint = fields.endpoint;
  const accessKey = fields.accesskey;
  if (!endpoint || !/^https?:\/\//.test(endpoint)) {
    throw new HubError('the connection string needs Endpoint=http(s)://host[:port]', 'BAD_CONNECTION_STRING');
  }
  if (!accessKey) {
    throw new HubError('the connection string needs AccessKey=<key>', 'BAD_CONNECTION_STRING');
  }
  return { endpoint: endpoint.replace(/\/+$/, ''), accessKey };
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** An HS256 JWT of `claims` signed with `key` (what the hub's access keys verify). */
function signToken(key, claims) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const sig = crypto.createHmac('sha256', key).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

/** The audience a server-link token must carry (the hub refuses any other token on the link). */
const LINK_AUDIENCE = 'socketio-hub:link';

/**
 * The token a server link presents: `aud: "socketio-hub:link"` and `sio.link: true` (the hub
 * requires both, so a client token can never open a link), valid for `ttlSeconds`.
 */
function linkToken(key, ttlSeconds = 3600) {
  const now = Math.floor(Date.now() / 1000);
  return signToken(key, { aud: LINK_AUDIENCE, 'sio.link': true, iat: now, exp: now + ttlSeconds });
}

/** The WebSocket URL of the link endpoint. */
function linkUrl(endpoint, name) {
  const base = endpoint.replace(/^http/, 'ws');
  return `${base}/api/v1/link?v=1&name=${encodeURIComponent(name)}`;
}

module.exports = { parseConnectionString, signToken, linkToken, linkUrl, LINK_AUDIENCE };

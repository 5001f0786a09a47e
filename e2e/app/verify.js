const crypto = require('node:crypto');

/**
 * Verify one socketio-hub webhook call. `headers`: the request headers with lower-case names
 * (Node's `req.headers`); `rawBody`: the body's bytes exactly as received; `keys`: the access
 * keys you hold; `seen`: one `Map` shared by every call (the ids already accepted). Returns
 * `null` for a genuine, fresh, first-seen call, else the reason to refuse it (answer 401).
 */
function verifyWebhook(headers, rawBody, keys, seen, { toleranceSeconds = 300, now = Date.now() } = {}) {
  const ts = String(headers['ce-timestamp'] || '');
  if (!/^[0-9]{1,12}$/.test(ts)) return 'missing or malformed ce-timestamp';
  const nowSeconds = Math.floor(now / 1000);
  if (Math.abs(nowSeconds - Number(ts)) > toleranceSeconds) return 'stale ce-timestamp';
  const id = headers['ce-id'];
  const type = headers['ce-type'];
  const source = headers['ce-source'];
  if (!id || !type || !source) return 'missing ce-id, ce-type or ce-source';
  const signed = Buffer.concat([Buffer.from(`${ts}\n${id}\n${type}\n${source}\n`), rawBody]);
  const wanted = keys.map((key) => crypto.createHmac('sha256', key).update(signed).digest());
  const genuine = String(headers['ce-signature'] || '').split(',').some((part) => {
    const m = /^v1=([0-9a-f]{64})$/.exec(part.trim());
    return m !== null && wanted.some((w) => crypto.timingSafeEqual(Buffer.from(m[1], 'hex'), w));
  });
  if (!genuine) return 'bad signature';
  // Forget ids whose timestamp has left the window (a replay of them is stale anyway).
  for (const [key, until] of seen) {
    if (until >= nowSeconds) break;
    seen.delete(key);
  }
  const key = `${source} ${id}`;
  if (seen.has(key)) return 'replayed';
  seen.set(key, Math.max(Number(ts), nowSeconds) + toleranceSeconds);
  return null;
}

module.exports = { verifyWebhook };

'use strict';
// The flooder of bench/flood/flood.js: one raw Engine.IO/Socket.IO WebSocket client (the `ws`
// package, no socket.io-client overhead) that writes `42["hub:to","sink","flood",<100 bytes>]`
// whenever its socket's buffer has room, and reconnects at once when the hub closes it (or
// refuses the handshake); a second connection sits in room `sink` and discards what the hub
// fans out to it (so each flood packet costs the hub a broadcast). On SIGUSR2 it prints
// `flooder stats {"sent":…,"opened":…,"refused":…}`.
//
//   node bench/flood/flooder.js http://127.0.0.1:PORT

const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..');
const WebSocket = require(path.join(REPO, 'e2e', 'node_modules', 'ws'));

const url = `${process.argv[2].replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`;
const packet = `42["hub:to","sink","flood","${'x'.repeat(100)}"]`;
const stats = { sent: 0, opened: 0, refused: 0 };
let announced = false;

/** The passive member of room `sink` (reconnects too; the hub may close it as a slow reader). */
function sink() {
  const ws = new WebSocket(url, { headers: { 'x-forwarded-for': '10.9.9.8' }, perMessageDeflate: false });
  ws.on('error', () => {});
  ws.on('close', () => setTimeout(sink, 100));
  ws.on('message', (data) => {
    const text = data.toString();
    if (text.startsWith('0{')) ws.send('40');
    else if (text === '2') ws.send('3');
    else if (text.startsWith('40')) ws.send('42["hub:join","sink"]');
  });
}

function connect() {
  const ws = new WebSocket(url, { headers: { 'x-forwarded-for': '10.9.9.9' }, perMessageDeflate: false });
  let retried = false;
  const retry = () => { if (!retried) { retried = true; setImmediate(connect); } };
  ws.on('unexpected-response', (req, res) => { stats.refused++; res.resume(); req.destroy(); retry(); });
  ws.on('error', retry);
  ws.on('close', retry);
  ws.on('message', (data) => {
    const text = data.toString();
    if (text.startsWith('0{')) ws.send('40');
    else if (text === '2') ws.send('3');
    else if (text.startsWith('40')) {
      stats.opened++;
      if (!announced) { announced = true; process.stdout.write('flooder ready\n'); }
      // At most 256 sends per turn of the event loop: once the hub drops the connection,
      // bufferedAmount stops growing and only the event loop can deliver the 'close'.
      const pump = () => {
        for (let i = 0; i < 256 && ws.readyState === WebSocket.OPEN && ws.bufferedAmount < 1 << 20; i++) {
          ws.send(packet);
          stats.sent++;
        }
        if (ws.readyState === WebSocket.OPEN) setImmediate(pump);
      };
      pump();
    }
  });
}

process.on('SIGUSR2', () => process.stdout.write(`flooder stats ${JSON.stringify(stats)}\n`));
sink();
connect();

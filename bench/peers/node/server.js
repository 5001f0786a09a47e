// A Node socket.io 4.8 server that does the bench's job, so the load generator can measure it
// side by side with the hub and the socketioxide peer.
//
// It offers the same conventions the hub grants clients natively ("client permissions"):
// hub:join / hub:leave (room, optional ack -> {"ok":true}), hub:to (room or rooms, event,
// ...args, optional ack: broadcast event(...args) to the rooms excluding the sender, then ack
// {"ok":true}), and echo (...args, ack -> ack(...args)). It listens on the address given as
// the first argument (default 127.0.0.1:0) and prints "node ready clients=<ip:port>".
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

const [host, port] = (process.argv[2] || "127.0.0.1:0").split(":");
const httpServer = http.createServer();
const io = new Server(httpServer, { serveClient: false });

const lastAck = (args) => (typeof args[args.length - 1] === "function" ? args.pop() : null);
const asRooms = (r) => (Array.isArray(r) ? r : [r]);

io.on("connection", (socket) => {
  socket.on("hub:join", (room, ...rest) => {
    const ack = lastAck(rest);
    if (typeof room === "string" || Array.isArray(room)) socket.join(asRooms(room));
    if (ack) ack({ ok: true });
  });
  socket.on("hub:leave", (room, ...rest) => {
    const ack = lastAck(rest);
    for (const r of asRooms(room)) socket.leave(r);
    if (ack) ack({ ok: true });
  });
  socket.on("hub:to", (...args) => {
    const ack = lastAck(args);
    const [room, event, ...rest] = args;
    if (typeof event !== "string") {
      if (ack) ack({ ok: false, error: "hub:to needs a room and an event" });
      return;
    }
    socket.to(asRooms(room)).emit(event, ...rest);
    if (ack) ack({ ok: true });
  });
  socket.on("echo", (...args) => {
    const ack = lastAck(args);
    if (ack) ack(...args);
  });
});

httpServer.listen(Number(port), host, () => {
  const a = httpServer.address();
  console.log(`node ready clients=${a.address}:${a.port}`);
});

// Types of @socketio-hub/sdk.
import type { Server } from 'socket.io';
import type { EventEmitter } from 'node:events';

export interface UseHubOptions {
  /** `Endpoint=http(s)://host[:port];AccessKey=<key>;` — default: env SOCKETIO_HUB_CONNECTION_STRING. */
  connectionString?: string;
  /** This server's name in the hub's logs (default `<hostname>:<pid>`). */
  name?: string;
  /** Where the SDK logs link state (`info`, `warn`, `error`); `null` for silence. Default `console`. */
  logger?: Pick<Console, 'info' | 'warn' | 'error'> | null;
  /** Called once when the hub refuses the link for good (wrong key, link mode off). */
  onFatal?: (err: HubError) => void;
}

export interface HubHello {
  t: 'hello';
  v: number;
  instance: number;
  node: string;
  maxAttachments: number;
}

export interface HubHandle {
  /** Resolves when the link is up the first time; rejects (HubError) when the hub refuses it. */
  ready: Promise<HubHello>;
  /** The server link (an EventEmitter: `ready`, `down`, `fatal`). */
  link: EventEmitter;
  /** Close the link; the hub re-binds this server's clients to the others. */
  close(): void;
}

/** Serve `io`'s clients through socketio-hub. Call once, before clients connect. */
export function useHub(io: Server, options?: UseHubOptions): HubHandle;

export function parseConnectionString(text: string): { endpoint: string; accessKey: string };
export function signToken(key: string, claims: Record<string, unknown>): string;
/** A server-link token: `aud: "socketio-hub:link"`, `sio.link: true`, `exp` in `ttlSeconds`. */
export function linkToken(key: string, ttlSeconds?: number): string;

export class HubError extends Error {
  /** `UNAUTHORIZED`, `REFUSED`, `BAD_CONNECTION_STRING`, `BAD_ARGUMENT`, `SOCKET_IO_VERSION`, `UNSUPPORTED`. */
  code: string;
}

/** Thrown by an API that cannot work behind the hub; `api` names it. */
export class HubUnsupportedError extends HubError {
  api: string;
}

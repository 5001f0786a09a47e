//! The configuration of one socketio-hub node.
//!
//! This crate is the contract between the operator (which renders it into a ConfigMap as TOML)
//! and the data plane (which reads it from a file, then lets env vars and flags override it).
//! Every field has a default, so an empty file is a valid single-node hub.
//!
//! Invariants: the crate does no I/O; `HubConfig::validate` is the single place that decides
//! whether a configuration can run, and its messages name the offending field.

use std::net::SocketAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod admin_ui;
mod validate;

pub use admin_ui::{is_bcrypt_hash, AdminUiAuth, AdminUiConfig, AdminUiMode};
pub use validate::{ConfigError, Problem};

/// Name of the file key the operator writes in its ConfigMap and the hub reads by default.
pub const CONFIG_FILE_NAME: &str = "hub.toml";

/// The whole configuration of a hub node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Address for clients, the REST API and server links. Default `0.0.0.0:3000`.
    pub listen: SocketAddr,
    /// Address for `/metrics`, `/healthz`, `/readyz`. Default `0.0.0.0:9090`.
    pub admin_listen: SocketAddr,
    /// URL clients and servers use to reach the hub, printed in the connection string.
    /// Default: `http://localhost:<listen port>`.
    pub public_endpoint: Option<String>,
    /// HTTP path of the Socket.IO endpoint. Default `/socket.io/`.
    pub path: String,
    /// Engine.IO (transport level) settings.
    pub engine: EngineConfig,
    /// Socket.IO (namespace level) settings.
    pub socketio: SocketIoConfig,
    /// Cross-origin settings for browsers.
    pub cors: CorsConfig,
    /// How the application's logic is reached.
    pub upstream: UpstreamConfig,
    /// Access keys and client authentication.
    pub auth: AuthConfig,
    /// What clients may do by themselves, without an application server.
    pub permissions: Vec<PermissionGrant>,
    /// Serve the demo chat page at `/`. Default `true`.
    pub demo_page: bool,
    /// Multi-node settings (see the cluster docs); ignored when `seeds` is empty.
    pub cluster: ClusterConfig,
    /// Abuse limits (per client IP, per connection, per socket). All off by default.
    pub limits: LimitsConfig,
    /// Logging.
    pub log: LogConfig,
    /// The Socket.IO Admin UI, served by the hub itself (off by default).
    pub admin_ui: AdminUiConfig,
    /// How long a SIGTERM drain waits for clients to leave before closing them. Default 10000 ms.
    pub shutdown_grace_ms: u64,
    /// On SIGTERM the node turns not-ready, refuses new sessions and closes its clients evenly
    /// paced over this period, so they reconnect to the other nodes a few at a time rather than
    /// in one burst. Capped at `shutdown_grace_ms`; 0 closes every client at once. Default 5000 ms.
    pub drain_period_ms: u64,
    /// Tokio worker threads. Default: one per CPU.
    pub workers: Option<usize>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 3000)),
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 9090)),
            public_endpoint: None,
            path: "/socket.io/".into(),
            engine: EngineConfig::default(),
            socketio: SocketIoConfig::default(),
            cors: CorsConfig::default(),
            upstream: UpstreamConfig::default(),
            auth: AuthConfig::default(),
            permissions: Vec::new(),
            demo_page: true,
            cluster: ClusterConfig::default(),
            limits: LimitsConfig::default(),
            log: LogConfig::default(),
            admin_ui: AdminUiConfig::default(),
            shutdown_grace_ms: 10_000,
            drain_period_ms: 5_000,
            workers: None,
        }
    }
}

/// The transports a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// HTTP long-polling.
    Polling,
    /// WebSocket (directly, or by upgrade from polling).
    Websocket,
}

/// Engine.IO settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Allowed transports. Default `["polling", "websocket"]`.
    pub transports: Vec<Transport>,
    /// Server ping period. Default 25000 ms.
    pub ping_interval_ms: u64,
    /// How long a pong may take before the session closes. Default 20000 ms.
    pub ping_timeout_ms: u64,
    /// Largest message or polling body a client may send, in bytes. Default 1000000.
    pub max_payload: usize,
    /// How long a polling→WebSocket upgrade may take. Default 10000 ms.
    pub upgrade_timeout_ms: u64,
    /// Most frames queued for one client before it is disconnected as too slow. Default 4096.
    pub max_queued_frames: usize,
    /// Most bytes queued for one client before it is disconnected as too slow. Default 8 MiB.
    pub max_queued_bytes: usize,
    /// Most Engine.IO sessions this node holds at once; more are refused with 503. Default 1000000.
    pub max_sessions: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            transports: vec![Transport::Polling, Transport::Websocket],
            ping_interval_ms: 25_000,
            ping_timeout_ms: 20_000,
            max_payload: 1_000_000,
            upgrade_timeout_ms: 10_000,
            max_queued_frames: 4096,
            max_queued_bytes: 8 << 20,
            max_sessions: 1_000_000,
        }
    }
}

/// Socket.IO settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SocketIoConfig {
    /// Time a new connection has to join a namespace before it is closed. Default 45000 ms.
    pub connect_timeout_ms: u64,
    /// Namespaces clients may join: exact names (`/chat`) or prefixes ending in `*` (`/org-*`).
    /// Default `["*"]` (any).
    pub namespaces: Vec<String>,
    /// Most binary attachments one packet may carry. Default 16.
    pub max_attachments: usize,
    /// Default timeout for server→client acks requested through the REST API. Default 10000 ms.
    pub ack_timeout_ms: u64,
    /// Connection state recovery.
    pub recovery: RecoveryConfig,
}

impl Default for SocketIoConfig {
    fn default() -> Self {
        SocketIoConfig {
            connect_timeout_ms: 45_000,
            namespaces: vec!["*".into()],
            max_attachments: 16,
            ack_timeout_ms: 10_000,
            recovery: RecoveryConfig::default(),
        }
    }
}

/// Connection state recovery (Socket.IO 4.6+ `connectionStateRecovery`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RecoveryConfig {
    /// Off by default, so the CONNECT reply is exactly `{"sid":…}`.
    pub enabled: bool,
    /// How long a disconnected socket's rooms and missed packets are kept. Default 120000 ms.
    pub max_disconnection_ms: u64,
    /// Most packets kept per namespace for replay. Default 10000.
    pub max_buffered_packets: usize,
    /// Cluster: how many other nodes hold a copy of each connected socket's recovery state
    /// (id and rooms), so the socket is recovered when its node dies. Default 1.
    pub replicas: usize,
    /// Most recovery sessions (disconnected sockets, and replicas of other nodes' sockets) one
    /// node holds per namespace; beyond it sessions are not kept (counted). Default 100000.
    pub max_sessions: usize,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            enabled: false,
            max_disconnection_ms: 120_000,
            max_buffered_packets: 10_000,
            replicas: 1,
            max_sessions: 100_000,
        }
    }
}

/// CORS for browser clients.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Allowed origins (`https://app.example.com`), or `["*"]`. Default empty: every origin is
    /// echoed back (the socket.io default); set a list in production.
    pub allowed_origins: Vec<String>,
    /// Send `Access-Control-Allow-Credentials: true`. Default `false`.
    pub credentials: bool,
    /// Origins allowed with credentials whatever `allowed_origins` and `credentials` say: the
    /// Admin UI's (`admin_ui.allowed_origins`, filled in at start when the UI is enabled).
    /// Not part of the file.
    #[serde(skip)]
    pub admin_origins: Vec<String>,
}

/// Which kind of upstream the hub talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamMode {
    /// No application: clients use only what `permissions` grant (the emulator default).
    #[default]
    None,
    /// Serverless: webhooks to `webhook_url` plus the REST API.
    Webhook,
    /// Default mode: application servers dial in over a server link.
    Link,
}

/// Where the application's logic lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `none`, `webhook` or `link`. Default `none`.
    pub mode: UpstreamMode,
    /// Webhook URL (required when `mode = "webhook"`).
    pub webhook_url: Option<String>,
    /// How long a webhook may take. Default 5000 ms.
    pub webhook_timeout_ms: u64,
    /// Most webhook requests in flight at once; beyond it events are dropped. Default 1024.
    pub webhook_max_in_flight: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            mode: UpstreamMode::None,
            webhook_url: None,
            webhook_timeout_ms: 5_000,
            webhook_max_in_flight: 1024,
        }
    }
}

/// Whether clients must present a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Tokens are not checked (but are still decoded when valid, for their claims).
    #[default]
    Disabled,
    /// Every client must present a valid token.
    Required,
}

/// Keys and client authentication.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Up to two access keys (primary, secondary) so they can be rotated. Prefer
    /// `access_keys_file` or the `SOCKETIO_HUB_ACCESS_KEYS` env var over writing keys here.
    /// Default: none, and a random key is generated and printed at start.
    pub access_keys: Vec<String>,
    /// File holding the access keys, one per line (a mounted Secret).
    pub access_keys_file: Option<String>,
    /// Client token requirement. Default `disabled`.
    pub client_auth: ClientAuth,
}

/// A grant of client-side abilities in a namespace (like Web PubSub client roles).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PermissionGrant {
    /// The namespace (exact name, or a prefix ending in `*`).
    pub namespace: String,
    /// Rooms clients may join and leave with `hub:join` / `hub:leave` (patterns as above).
    #[serde(default)]
    pub join: Vec<String>,
    /// Rooms clients may emit to with `hub:to` (patterns as above).
    #[serde(default)]
    pub emit: Vec<String>,
}

/// Multi-node settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Node name. Default: the host name.
    pub node_name: Option<String>,
    /// Gossip seed addresses (`host:port`). Empty: single node.
    pub seeds: Vec<String>,
    /// UDP gossip address. Default `0.0.0.0:7946`.
    pub gossip_listen: Option<SocketAddr>,
    /// TCP mesh address. Default `0.0.0.0:7947`.
    pub mesh_listen: Option<SocketAddr>,
    /// Address other nodes use to reach this one. Default: the listen address; when that is
    /// unspecified (`0.0.0.0`), `$POD_IP`, else `127.0.0.1`.
    pub advertise_host: Option<String>,
    /// Cluster name; nodes with another name ignore this one's gossip. Default `socketio-hub`.
    pub cluster_id: Option<String>,
    /// Gossip round period in ms; failure detection takes about 9 rounds. Default 200.
    pub gossip_interval_ms: Option<u64>,
    /// Mesh frames queued per peer before new ones are dropped (and counted). Default 8192.
    pub mesh_queue_frames: Option<usize>,
    /// Deadline of a remote operation (fetch sockets, acks, join/leave) in ms. Default 5000.
    pub request_timeout_ms: Option<u64>,
    /// The cluster secret: every node of a cluster must hold the same one, or its mesh links and
    /// gossip are refused. At least `MIN_CLUSTER_SECRET_LEN` characters (`openssl rand -hex 32`).
    /// Prefer `secret_file` or the `SOCKETIO_HUB_CLUSTER_SECRET` env var over writing it here.
    /// Default: none — the cluster is unauthenticated (a warning is logged and `/cluster` says so).
    pub secret: Option<String>,
    /// File holding the cluster secret (a mounted Secret), read once at start; surrounding
    /// whitespace is ignored. Exclusive with `secret`. Default: none.
    pub secret_file: Option<String>,
    /// Partition handling: a node that sees fewer than half of the cluster's members (itself
    /// and the peers it knew, not counting peers that left by draining) is fenced — it reports
    /// not ready, refuses new sessions and REST calls, and closes its clients paced over
    /// `drain_period_ms` so they reconnect (and recover) on the majority side; it serves again
    /// once it sees a majority and the recovery settle time passed. A tie (half) keeps
    /// serving, so a 2-node cluster never fences. `false`: every side of a partition keeps
    /// serving (clients cut off from the majority silently miss what is sent there). Default
    /// true. See docs/partitions.md.
    pub quorum: Option<bool>,
    /// How long a peer that failed (went silent while ready) still counts as a member, in ms:
    /// after that it is forgotten, and a node left alone by crashes serves again. Default 30000.
    pub quorum_forget_ms: Option<u64>,
}

/// Shortest cluster secret accepted, in bytes (after trimming surrounding whitespace).
pub const MIN_CLUSTER_SECRET_LEN: usize = 32;

/// Abuse limits. Every limit is off (0) by default; each refusal or close is counted in
/// `socketio_hub_limit_refusals_total{limit}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Most concurrent Engine.IO sessions (client connections, any transport) from one client
    /// IP; more are refused with HTTP 429. 0 = unlimited. Default 0.
    pub connections_per_ip: u32,
    /// Most new sessions (handshakes) per second from one client IP, with bursts of the same
    /// size; more are refused with HTTP 429. 0 = unlimited. Default 0.
    pub handshakes_per_second_per_ip: u32,
    /// Request header holding the client IP when the hub is behind a proxy you trust
    /// (`x-forwarded-for`, `x-real-ip`). Unset: the TCP peer address. Only set it when every
    /// client request comes through that proxy, or clients can pick their own IP. Default unset.
    pub trusted_proxy_header: Option<String>,
    /// Which entry of a comma-separated `trusted_proxy_header` is the client, counted from the
    /// right (1 = the last, the one your proxy appended). Default 1.
    pub trusted_proxy_hops: usize,
    /// Most distinct client IPs (IPv6: /64 prefixes) tracked for the per-IP limits; at the
    /// bound, idle entries are evicted, and a new IP is refused when none is idle. Default 100000.
    pub max_tracked_ips: usize,
    /// Most inbound Engine.IO packets per second on one connection (bursts up to twice that);
    /// beyond it the connection is closed (`rate_limited`). 0 = unlimited. Default 0.
    pub packets_per_second: u32,
    /// Most inbound message bytes per second on one connection (bursts up to twice that);
    /// beyond it the connection is closed (`rate_limited`). 0 = unlimited. Default 0.
    pub bytes_per_second: u64,
    /// Most rooms one socket may be in (its own id room not counted); a join past it is refused
    /// whole. 0 = unlimited. Default 0.
    pub rooms_per_socket: usize,
    /// Most namespaces one connection may join at once; another CONNECT gets CONNECT_ERROR.
    /// 0 = unlimited. Default 0.
    pub namespaces_per_connection: usize,
    /// Most namespaces one node serves (each keeps its own rooms and, with recovery, its own
    /// log; they are never removed): a CONNECT to one more gets CONNECT_ERROR, and a REST emit
    /// or a peer's broadcast to one more is not kept here. The Admin UI's namespace does not
    /// count. 0 = unlimited. Default 10000.
    pub namespaces: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            connections_per_ip: 0,
            handshakes_per_second_per_ip: 0,
            trusted_proxy_header: None,
            trusted_proxy_hops: 1,
            max_tracked_ips: 100_000,
            packets_per_second: 0,
            bytes_per_second: 0,
            rooms_per_socket: 0,
            namespaces_per_connection: 0,
            namespaces: 10_000,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`. Default `text`.
    pub format: LogFormat,
    /// A `tracing` filter (`info`, `socketio_hub=debug`). Default `info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Text, level: "info".into() }
    }
}

impl HubConfig {
    /// Parse a TOML document. Unknown keys are errors, so typos are caught.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// Render as TOML (what the operator writes into its ConfigMap).
    pub fn to_toml(&self) -> String {
        // Serializing a plain struct of strings, numbers and lists cannot fail.
        toml::to_string_pretty(self).expect("HubConfig is always representable as TOML")
    }

    /// The endpoint clients and servers use.
    pub fn endpoint(&self) -> String {
        match &self.public_endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => format!("http://localhost:{}", self.listen.port()),
        }
    }
}

/// Whether `name` matches a namespace or room pattern: exact, `*`, or a prefix ending in `*`.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

#[cfg(test)]
mod tests;

//! Command line and environment: every option overrides the configuration file, which
//! overrides the defaults. Each flag also reads `SOCKETIO_HUB_<NAME>` from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use socketio_hub_config::{
    ClientAuth, ConfigError, HubConfig, LogFormat, PermissionGrant, Transport, UpstreamMode,
};

/// socketio-hub: a self-hosted Socket.IO service. With no options it is a complete
/// single-node hub on http://localhost:3000 with a demo page at `/`.
#[derive(Debug, Parser, Default)]
#[command(name = "socketio-hub", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    /// TOML configuration file (see README's configuration table). [default: none]
    #[arg(long, env = "SOCKETIO_HUB_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address for clients, the REST API and server links. [default: 0.0.0.0:3000]
    #[arg(long, env = "SOCKETIO_HUB_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address for /metrics, /healthz, /readyz. [default: 0.0.0.0:9090]
    #[arg(long, env = "SOCKETIO_HUB_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// URL clients and servers use to reach the hub. [default: http://localhost:<port>]
    #[arg(long, env = "SOCKETIO_HUB_PUBLIC_ENDPOINT")]
    pub public_endpoint: Option<String>,
    /// HTTP path of the Socket.IO endpoint. [default: /socket.io/]
    #[arg(long, env = "SOCKETIO_HUB_PATH")]
    pub path: Option<String>,
    /// Allowed transports, comma-separated. [default: polling,websocket]
    #[arg(long, env = "SOCKETIO_HUB_TRANSPORTS", value_delimiter = ',', value_parser = parse_transport)]
    pub transports: Option<Vec<Transport>>,
    /// Server ping period in ms. [default: 25000]
    #[arg(long, env = "SOCKETIO_HUB_PING_INTERVAL_MS")]
    pub ping_interval_ms: Option<u64>,
    /// Pong deadline in ms. [default: 20000]
    #[arg(long, env = "SOCKETIO_HUB_PING_TIMEOUT_MS")]
    pub ping_timeout_ms: Option<u64>,
    /// Largest message or polling body a client may send, in bytes. [default: 1000000]
    #[arg(long, env = "SOCKETIO_HUB_MAX_PAYLOAD")]
    pub max_payload: Option<usize>,
    /// Time to join a namespace after connecting, in ms. [default: 45000]
    #[arg(long, env = "SOCKETIO_HUB_CONNECT_TIMEOUT_MS")]
    pub connect_timeout_ms: Option<u64>,
    /// Namespaces clients may join (`/chat`, `/org-*`, `*`), comma-separated. [default: *]
    #[arg(long, env = "SOCKETIO_HUB_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Option<Vec<String>>,
    /// Turn connection state recovery on. [default: off]
    #[arg(long, env = "SOCKETIO_HUB_RECOVERY")]
    pub recovery: bool,
    /// Allowed CORS origins, comma-separated, or `*`. [default: echo any origin]
    #[arg(long, env = "SOCKETIO_HUB_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,
    /// Send Access-Control-Allow-Credentials. [default: off]
    #[arg(long, env = "SOCKETIO_HUB_CORS_CREDENTIALS")]
    pub cors_credentials: bool,
    /// Upstream mode: none, webhook or link. [default: none]
    #[arg(long, env = "SOCKETIO_HUB_UPSTREAM", value_parser = parse_mode)]
    pub upstream: Option<UpstreamMode>,
    /// Webhook URL (serverless mode). [default: none]
    #[arg(long, env = "SOCKETIO_HUB_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// Access keys (primary,secondary). Prefer the env var or a file. [default: generated]
    #[arg(long, env = "SOCKETIO_HUB_ACCESS_KEYS", value_delimiter = ',', hide_env_values = true)]
    pub access_keys: Option<Vec<String>>,
    /// File with the access keys, one per line. [default: none]
    #[arg(long, env = "SOCKETIO_HUB_ACCESS_KEYS_FILE")]
    pub access_keys_file: Option<String>,
    /// Require client tokens: disabled or required. [default: disabled]
    #[arg(long, env = "SOCKETIO_HUB_CLIENT_AUTH", value_parser = parse_client_auth)]
    pub client_auth: Option<ClientAuth>,
    /// Let clients of NAMESPACE join and emit to any room themselves (repeatable). [default: none]
    #[arg(long = "allow-client-rooms", value_name = "NAMESPACE")]
    pub allow_client_rooms: Vec<String>,
    /// Do not serve the demo page at `/`. [default: served]
    #[arg(long, env = "SOCKETIO_HUB_NO_DEMO")]
    pub no_demo: bool,
    /// This node's name. [default: host name]
    #[arg(long, env = "SOCKETIO_HUB_NODE_NAME")]
    pub node_name: Option<String>,
    /// Gossip addresses (host:port) of other nodes, comma-separated; turns clustering on.
    /// [default: none — a single node]
    #[arg(long, env = "SOCKETIO_HUB_CLUSTER_SEEDS", value_delimiter = ',')]
    pub cluster_seeds: Option<Vec<String>>,
    /// UDP gossip address. [default: 0.0.0.0:7946]
    #[arg(long, env = "SOCKETIO_HUB_GOSSIP_LISTEN")]
    pub gossip_listen: Option<SocketAddr>,
    /// TCP mesh address (node-to-node links; port 0 picks one). [default: 0.0.0.0:7947]
    #[arg(long, env = "SOCKETIO_HUB_MESH_LISTEN")]
    pub mesh_listen: Option<SocketAddr>,
    /// File holding the cluster secret, shared by every node (at least 32 bytes; `openssl rand
    /// -hex 32`). Nodes with another secret are refused. [default: none — unauthenticated]
    #[arg(long, env = "SOCKETIO_HUB_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<String>,
    /// The cluster secret itself. Prefer the env var or --cluster-secret-file. [default: none]
    #[arg(long, env = "SOCKETIO_HUB_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// Address other nodes use to reach this one. [default: the listen address, else $POD_IP]
    #[arg(long, env = "SOCKETIO_HUB_ADVERTISE_HOST")]
    pub advertise_host: Option<String>,
    /// Most concurrent sessions from one client IP; more get HTTP 429. 0 = unlimited.
    /// [default: 0]
    #[arg(long, env = "SOCKETIO_HUB_CONNECTIONS_PER_IP", value_name = "N")]
    pub connections_per_ip: Option<u32>,
    /// Most new sessions per second from one client IP (bursts the same); more get HTTP 429.
    /// 0 = unlimited. [default: 0]
    #[arg(long, env = "SOCKETIO_HUB_HANDSHAKES_PER_SECOND_PER_IP", value_name = "N")]
    pub handshakes_per_second_per_ip: Option<u32>,
    /// Header holding the client IP behind a proxy you trust (`x-forwarded-for`). Set it only
    /// when every request comes through that proxy. [default: none — the TCP peer]
    #[arg(long, env = "SOCKETIO_HUB_TRUSTED_PROXY_HEADER", value_name = "HEADER")]
    pub trusted_proxy_header: Option<String>,
    /// Which entry of a comma-separated --trusted-proxy-header is the client, from the right.
    /// [default: 1]
    #[arg(long, env = "SOCKETIO_HUB_TRUSTED_PROXY_HOPS", value_name = "N")]
    pub trusted_proxy_hops: Option<usize>,
    /// Most client IPs (IPv6 /64s) tracked for the per-IP limits. [default: 100000]
    #[arg(long, env = "SOCKETIO_HUB_MAX_TRACKED_IPS", value_name = "N")]
    pub max_tracked_ips: Option<usize>,
    /// Most inbound packets per second on one connection (bursts twice that); beyond it the
    /// connection is closed. 0 = unlimited. [default: 0]
    #[arg(long, env = "SOCKETIO_HUB_PACKETS_PER_SECOND", value_name = "N")]
    pub packets_per_second: Option<u32>,
    /// Most inbound message bytes per second on one connection (bursts twice that); beyond it
    /// the connection is closed. 0 = unlimited. [default: 0]
    #[arg(long, env = "SOCKETIO_HUB_BYTES_PER_SECOND", value_name = "N")]
    pub bytes_per_second: Option<u64>,
    /// Most rooms one socket may be in (its own id room not counted); a join past it is
    /// refused whole. 0 = unlimited. [default: 0]
    #[arg(long, env = "SOCKETIO_HUB_ROOMS_PER_SOCKET", value_name = "N")]
    pub rooms_per_socket: Option<usize>,
    /// Most namespaces one connection may join at once; another gets CONNECT_ERROR.
    /// 0 = unlimited. [default: 0]
    #[arg(long, env = "SOCKETIO_HUB_NAMESPACES_PER_CONNECTION", value_name = "N")]
    pub namespaces_per_connection: Option<usize>,
    /// Log format: text or json. [default: text]
    #[arg(long, env = "SOCKETIO_HUB_LOG_FORMAT", value_parser = parse_log_format)]
    pub log_format: Option<LogFormat>,
    /// Log filter (`info`, `socketio_hub=debug`). [default: info]
    #[arg(long, env = "SOCKETIO_HUB_LOG")]
    pub log: Option<String>,
    /// Worker threads. [default: one per CPU]
    #[arg(long, env = "SOCKETIO_HUB_WORKERS")]
    pub workers: Option<usize>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Sleep this many seconds (0 to 300), then exit, doing nothing else: the pod's preStop
    /// hook, since the hub's image has no shell and no `sleep`.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(0..=300))]
    pub sleep: Option<u64>,
}

fn parse_transport(s: &str) -> Result<Transport, String> {
    match s {
        "polling" => Ok(Transport::Polling),
        "websocket" => Ok(Transport::Websocket),
        _ => Err(format!("{s:?} is not a transport (polling, websocket)")),
    }
}

fn parse_mode(s: &str) -> Result<UpstreamMode, String> {
    match s {
        "none" => Ok(UpstreamMode::None),
        "webhook" => Ok(UpstreamMode::Webhook),
        "link" => Ok(UpstreamMode::Link),
        _ => Err(format!("{s:?} is not an upstream mode (none, webhook, link)")),
    }
}

fn parse_client_auth(s: &str) -> Result<ClientAuth, String> {
    match s {
        "disabled" => Ok(ClientAuth::Disabled),
        "required" => Ok(ClientAuth::Required),
        _ => Err(format!("{s:?} is not a client auth setting (disabled, required)")),
    }
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("{s:?} is not a log format (text, json)")),
    }
}

/// Why the configuration could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Parsing or validation failed.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl Cli {
    /// Defaults, then the file, then these options; validated.
    pub fn into_config(self) -> Result<HubConfig, CliError> {
        let mut c = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| CliError::Read { path: path.clone(), source })?;
                HubConfig::from_toml(&text)?
            }
            None => HubConfig::default(),
        };
        macro_rules! set {
            ($field:expr, $value:expr) => {
                if let Some(v) = $value {
                    $field = v;
                }
            };
        }
        set!(c.listen, self.listen);
        set!(c.admin_listen, self.admin_listen);
        if self.public_endpoint.is_some() {
            c.public_endpoint = self.public_endpoint;
        }
        set!(c.path, self.path);
        set!(c.engine.transports, self.transports);
        set!(c.engine.ping_interval_ms, self.ping_interval_ms);
        set!(c.engine.ping_timeout_ms, self.ping_timeout_ms);
        set!(c.engine.max_payload, self.max_payload);
        set!(c.socketio.connect_timeout_ms, self.connect_timeout_ms);
        set!(c.socketio.namespaces, self.namespaces);
        if self.recovery {
            c.socketio.recovery.enabled = true;
        }
        set!(c.cors.allowed_origins, self.cors_origins);
        if self.cors_credentials {
            c.cors.credentials = true;
        }
        set!(c.upstream.mode, self.upstream);
        if self.webhook_url.is_some() {
            c.upstream.webhook_url = self.webhook_url;
            if self.upstream.is_none() {
                c.upstream.mode = UpstreamMode::Webhook;
            }
        }
        set!(c.auth.access_keys, self.access_keys);
        if self.access_keys_file.is_some() {
            c.auth.access_keys_file = self.access_keys_file;
        }
        set!(c.auth.client_auth, self.client_auth);
        for ns in self.allow_client_rooms {
            c.permissions.push(PermissionGrant {
                namespace: ns,
                join: vec!["*".into()],
                emit: vec!["*".into()],
            });
        }
        if self.no_demo {
            c.demo_page = false;
        }
        if self.node_name.is_some() {
            c.cluster.node_name = self.node_name;
        }
        set!(c.cluster.seeds, self.cluster_seeds);
        if self.gossip_listen.is_some() {
            c.cluster.gossip_listen = self.gossip_listen;
        }
        if self.mesh_listen.is_some() {
            c.cluster.mesh_listen = self.mesh_listen;
        }
        if self.advertise_host.is_some() {
            c.cluster.advertise_host = self.advertise_host;
        }
        // A secret given here replaces the file's, whichever form either takes.
        if let Some(secret) = self.cluster_secret {
            c.cluster.secret = Some(secret);
            c.cluster.secret_file = None;
        } else if let Some(file) = self.cluster_secret_file {
            c.cluster.secret_file = Some(file);
            c.cluster.secret = None;
        }
        let l = &mut c.limits;
        set!(l.connections_per_ip, self.connections_per_ip);
        set!(l.handshakes_per_second_per_ip, self.handshakes_per_second_per_ip);
        if self.trusted_proxy_header.is_some() {
            l.trusted_proxy_header = self.trusted_proxy_header;
        }
        set!(l.trusted_proxy_hops, self.trusted_proxy_hops);
        set!(l.max_tracked_ips, self.max_tracked_ips);
        set!(l.packets_per_second, self.packets_per_second);
        set!(l.bytes_per_second, self.bytes_per_second);
        set!(l.rooms_per_socket, self.rooms_per_socket);
        set!(l.namespaces_per_connection, self.namespaces_per_connection);
        set!(c.log.format, self.log_format);
        set!(c.log.level, self.log);
        if self.workers.is_some() {
            c.workers = self.workers;
        }
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_are_validated() {
        let dir = std::env::temp_dir().join(format!("sioh-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hub.toml");
        std::fs::write(&file, "path = \"/io/\"\n[engine]\nping_interval_ms = 5000\n").unwrap();
        let cli = Cli::try_parse_from([
            "socketio-hub",
            "--config",
            file.to_str().unwrap(),
            "--ping-interval-ms",
            "7000",
        ])
        .unwrap();
        let c = cli.into_config().unwrap();
        assert_eq!((c.path.as_str(), c.engine.ping_interval_ms), ("/io/", 7000));
        let bad = Cli::try_parse_from(["socketio-hub", "--path", "nope"]).unwrap();
        assert!(bad.into_config().unwrap_err().to_string().contains("path"));
        assert!(Cli::try_parse_from(["socketio-hub", "--upstream", "redis"]).is_err());
    }

    #[test]
    fn limit_flags_override_the_file_and_are_validated() {
        let dir = std::env::temp_dir().join(format!("sioh-cli-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hub.toml");
        std::fs::write(&file, "[limits]\nrooms_per_socket = 5\npackets_per_second = 7\n").unwrap();
        let cli = Cli::try_parse_from([
            "socketio-hub",
            "--config",
            file.to_str().unwrap(),
            "--connections-per-ip",
            "10",
            "--handshakes-per-second-per-ip",
            "3",
            "--trusted-proxy-header",
            "x-forwarded-for",
            "--trusted-proxy-hops",
            "2",
            "--max-tracked-ips",
            "500",
            "--bytes-per-second",
            "65536",
            "--rooms-per-socket",
            "20",
            "--namespaces-per-connection",
            "4",
        ])
        .unwrap();
        let l = cli.into_config().unwrap().limits;
        assert_eq!(
            (l.connections_per_ip, l.handshakes_per_second_per_ip, l.trusted_proxy_hops, l.max_tracked_ips),
            (10, 3, 2, 500)
        );
        assert_eq!(l.trusted_proxy_header.as_deref(), Some("x-forwarded-for"));
        assert_eq!((l.packets_per_second, l.bytes_per_second), (7, 65536), "the file's value stays");
        assert_eq!((l.rooms_per_socket, l.namespaces_per_connection), (20, 4));
        let defaults = Cli::try_parse_from(["socketio-hub"]).unwrap().into_config().unwrap();
        assert_eq!(defaults.limits, socketio_hub_config::LimitsConfig::default());
        assert!(Cli::try_parse_from(["socketio-hub", "--rooms-per-socket", "-1"]).is_err());
        assert!(Cli::try_parse_from(["socketio-hub", "--packets-per-second", "lots"]).is_err());
    }

    #[test]
    fn help_shows_each_default_once() {
        use clap::CommandFactory;
        let help = Cli::command().render_help().to_string();
        // An option's help wraps over several lines: each option starts at a line of flags.
        let mut options: Vec<String> = Vec::new();
        for line in help.lines() {
            if line.trim_start().starts_with('-') {
                options.push(String::new());
            }
            if let Some(o) = options.last_mut() {
                o.push_str(line);
                o.push('\n');
            }
        }
        assert!(options.len() > 40, "{help}");
        for option in &options {
            let defaults = option.matches("[default:").count();
            let flag = option.split_whitespace().find(|w| w.starts_with("--")).unwrap_or_default();
            let exempt = ["--print-config", "--sleep", "--help", "--version"].contains(&flag);
            assert!(defaults == 1 || (exempt && defaults == 0), "{defaults} defaults for {option}");
        }
        for flag in [
            "--connections-per-ip",
            "--handshakes-per-second-per-ip",
            "--trusted-proxy-header",
            "--trusted-proxy-hops",
            "--max-tracked-ips",
            "--packets-per-second",
            "--bytes-per-second",
            "--rooms-per-socket",
            "--namespaces-per-connection",
        ] {
            assert!(help.contains(flag), "{flag} missing from --help");
        }
    }

    #[test]
    fn the_cluster_secret_flags_replace_the_file_setting() {
        let dir = std::env::temp_dir().join(format!("sioh-cli-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hub.toml");
        std::fs::write(&file, format!("[cluster]\nsecret = \"{}\"\n", "f".repeat(32))).unwrap();
        let cli = Cli::try_parse_from([
            "socketio-hub",
            "--config",
            file.to_str().unwrap(),
            "--cluster-secret-file",
            "/run/secrets/cluster",
        ])
        .unwrap();
        let c = cli.into_config().unwrap();
        assert_eq!(c.cluster.secret_file.as_deref(), Some("/run/secrets/cluster"));
        assert_eq!(c.cluster.secret, None);
        let short = Cli::try_parse_from(["socketio-hub", "--cluster-secret", "too-short"]).unwrap();
        assert!(short.into_config().unwrap_err().to_string().contains("cluster.secret"));
    }
}

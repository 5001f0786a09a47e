//! `[admin_ui]`: the official Socket.IO Admin UI (`@socket.io/admin-ui`) served natively, on
//! an admin namespace of the hub itself, cluster-wide (see `docs/admin-ui.md`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validate::Problem;

/// How admin UI connections are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AdminUiAuth {
    /// Username and bcrypt password hash (`username`, `password_hash` or `password_hash_file`).
    #[default]
    Basic,
    /// No authentication: anyone who reaches the namespace administers the hub. Only for a
    /// hub reachable by trusted people alone.
    None,
}

/// What the admin UI is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AdminUiMode {
    /// Aggregates only: per-node `server_stats` every `stats_interval_ms`. Costs nothing per
    /// message.
    #[default]
    Production,
    /// Also the socket list and every connection, disconnection, room change and received
    /// event, broadcast to the admin sockets of every node: costs a cluster broadcast per
    /// event. For development and debugging.
    Development,
}

/// The Admin UI's server side, built into the hub. Off by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AdminUiConfig {
    /// Serve the admin namespace. Default `false`.
    pub enabled: bool,
    /// The admin namespace (the UI's "namespace" field). Default `/admin`.
    pub namespace: String,
    /// `basic` (username + bcrypt hash) or `none`. Default `basic`.
    pub auth: AdminUiAuth,
    /// The UI's username (required with `auth = "basic"`).
    pub username: Option<String>,
    /// bcrypt hash of the password (`$2b$10$…`, from `htpasswd -bnBC 10 "" pw | tr -d ':'` or
    /// any bcrypt tool). Prefer `password_hash_file` (a mounted Secret).
    pub password_hash: Option<String>,
    /// File holding the bcrypt hash, read once at start. Exclusive with `password_hash`.
    pub password_hash_file: Option<String>,
    /// How long a `session` id the UI got at login lets it reconnect without the password, in
    /// seconds. Default 86400.
    pub session_ttl_s: u64,
    /// `production` (aggregates only) or `development` (socket list, per-socket events).
    /// Default `production`.
    pub mode: AdminUiMode,
    /// Refuse the UI's commands (`emit`, `join`, `leave`, `_disconnect`). Default `false`.
    pub readonly: bool,
    /// Period of each node's `server_stats`, in ms. Default 2000 (what the UI expects: it
    /// marks a server unhealthy after 10 s of silence).
    pub stats_interval_ms: u64,
    /// Origins the UI is loaded from, allowed with credentials (the UI connects with
    /// `withCredentials`). Default `["https://admin.socket.io"]`, the hosted UI.
    pub allowed_origins: Vec<String>,
    /// Serve the UI's static files at `ui_path`. Default `false`.
    pub serve_ui: bool,
    /// Where `serve_ui` serves them from: `ui_path` on the client port. Default `/admin-ui/`.
    pub ui_path: String,
    /// Serve the files from this directory (the npm package's `ui/dist`) instead of the copy
    /// embedded at build time. Default: the embedded copy.
    pub ui_dir: Option<String>,
}

impl Default for AdminUiConfig {
    fn default() -> Self {
        AdminUiConfig {
            enabled: false,
            namespace: "/admin".into(),
            auth: AdminUiAuth::Basic,
            username: None,
            password_hash: None,
            password_hash_file: None,
            session_ttl_s: 86_400,
            mode: AdminUiMode::Production,
            readonly: false,
            stats_interval_ms: 2_000,
            allowed_origins: vec!["https://admin.socket.io".into()],
            serve_ui: false,
            ui_path: "/admin-ui/".into(),
            ui_dir: None,
        }
    }
}

/// Whether `hash` has the shape of a bcrypt hash: `$2a$`/`$2b$`/`$2x$`/`$2y$`, a cost of
/// 04..=31, then 53 characters of bcrypt's base64.
pub fn is_bcrypt_hash(hash: &str) -> bool {
    let b = hash.as_bytes();
    if b.len() != 60 || &b[..2] != b"$2" || !b"abxy".contains(&b[2]) || b[3] != b'$' || b[6] != b'$' {
        return false;
    }
    let cost = std::str::from_utf8(&b[4..6]).ok().and_then(|c| c.parse::<u32>().ok());
    matches!(cost, Some(4..=31))
        && b[7..].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'/')
}

impl AdminUiConfig {
    /// Problems of this section (none when it is disabled and untouched).
    pub(crate) fn problems(&self, socketio_path: &str, out: &mut Vec<Problem>) {
        let mut bad = |field: &'static str, message: String| out.push(Problem { field, message });
        if !self.enabled {
            return;
        }
        let ns = &self.namespace;
        if !ns.starts_with('/') || ns.len() < 2 || ns.len() > 256 || ns.contains([',', '?', '#']) {
            bad("admin_ui.namespace", format!("{ns:?} must be a namespace like \"/admin\" (not \"/\")"));
        }
        match self.auth {
            AdminUiAuth::Basic => {
                if self.username.as_deref().is_none_or(|u| u.is_empty()) {
                    bad(
                        "admin_ui.username",
                        "is required with auth = \"basic\" (or set auth = \"none\")".into(),
                    );
                }
                match (&self.password_hash, &self.password_hash_file) {
                    (Some(_), Some(_)) => bad(
                        "admin_ui.password_hash",
                        "set either password_hash or password_hash_file, not both".into(),
                    ),
                    (None, None) => bad(
                        "admin_ui.password_hash",
                        "a bcrypt hash (or password_hash_file) is required with auth = \"basic\"".into(),
                    ),
                    (Some(h), None) if !is_bcrypt_hash(h.trim()) => bad(
                        "admin_ui.password_hash",
                        "is not a bcrypt hash ($2b$<cost>$ followed by 53 characters)".into(),
                    ),
                    (None, Some(f)) if f.trim().is_empty() => {
                        bad("admin_ui.password_hash_file", "is an empty path".into())
                    }
                    _ => {}
                }
            }
            AdminUiAuth::None => {
                if self.username.is_some()
                    || self.password_hash.is_some()
                    || self.password_hash_file.is_some()
                {
                    bad("admin_ui.auth", "is \"none\" but credentials are set; use auth = \"basic\"".into());
                }
            }
        }
        if self.session_ttl_s == 0 || self.session_ttl_s > 30 * 86_400 {
            bad("admin_ui.session_ttl_s", format!("{} is outside 1..=2592000", self.session_ttl_s));
        }
        if !(500..=60_000).contains(&self.stats_interval_ms) {
            bad("admin_ui.stats_interval_ms", format!("{} is outside 500..=60000", self.stats_interval_ms));
        }
        for o in &self.allowed_origins {
            if o == "*" || !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/') {
                bad(
                    "admin_ui.allowed_origins",
                    format!("{o:?} must be an origin like \"https://admin.socket.io\" (no \"*\", no trailing '/')"),
                );
            }
        }
        let p = &self.ui_path;
        if self.serve_ui && (!p.starts_with('/') || !p.ends_with('/') || p == "/") {
            bad(
                "admin_ui.ui_path",
                format!("{p:?} must start and end with '/' and not be \"/\", like \"/admin-ui/\""),
            );
        }
        if self.serve_ui && p.starts_with(socketio_path) {
            bad("admin_ui.ui_path", format!("{p:?} is under the Socket.IO path {socketio_path:?}"));
        }
        if self.ui_dir.as_deref().is_some_and(|d| d.trim().is_empty()) {
            bad("admin_ui.ui_dir", "is an empty path".into());
        }
    }
}

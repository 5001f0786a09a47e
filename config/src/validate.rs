//! Start-up validation: every problem found, each naming its field and what to do.

use std::fmt;

use crate::{HubConfig, Transport, UpstreamMode, MIN_CLUSTER_SECRET_LEN};

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the field (`engine.ping_timeout_ms`).
    pub field: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid TOML for this schema.
    #[error("configuration file: {0}")]
    Parse(String),
    /// The values do not make a runnable hub.
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

impl HubConfig {
    /// Check the whole configuration; returns every problem, not just the first.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut bad = |field: &'static str, message: String| problems.push(Problem { field, message });

        if !self.path.starts_with('/') || !self.path.ends_with('/') {
            bad("path", format!("{:?} must start and end with '/', like \"/socket.io/\"", self.path));
        }
        let e = &self.engine;
        if e.transports.is_empty() {
            bad("engine.transports", "needs at least one of \"polling\", \"websocket\"".into());
        }
        if e.ping_interval_ms < 100 || e.ping_interval_ms > 3_600_000 {
            bad("engine.ping_interval_ms", format!("{} is outside 100..=3600000", e.ping_interval_ms));
        }
        if e.ping_timeout_ms < 100 || e.ping_timeout_ms > 3_600_000 {
            bad("engine.ping_timeout_ms", format!("{} is outside 100..=3600000", e.ping_timeout_ms));
        }
        if e.max_payload < 1024 || e.max_payload > 256 << 20 {
            bad("engine.max_payload", format!("{} is outside 1024..=268435456 bytes", e.max_payload));
        }
        if e.max_queued_frames < 16 {
            bad("engine.max_queued_frames", format!("{} is below 16", e.max_queued_frames));
        }
        if e.max_queued_bytes < e.max_payload.min(64 << 10) {
            bad("engine.max_queued_bytes", "must hold at least one 64 KiB message".into());
        }
        if e.max_sessions == 0 {
            bad("engine.max_sessions", "must be at least 1".into());
        }
        if !e.transports.contains(&Transport::Polling) && e.upgrade_timeout_ms == 0 {
            // Harmless, but a zero upgrade timeout would refuse every upgrade.
        } else if e.upgrade_timeout_ms == 0 {
            bad("engine.upgrade_timeout_ms", "must be above 0".into());
        }
        let s = &self.socketio;
        if s.connect_timeout_ms == 0 {
            bad("socketio.connect_timeout_ms", "must be above 0".into());
        }
        if s.namespaces.is_empty() {
            bad("socketio.namespaces", "is empty, so no client could connect; use [\"*\"] for any".into());
        }
        for ns in &s.namespaces {
            if ns != "*" && !ns.starts_with('/') {
                bad("socketio.namespaces", format!("{ns:?} must start with '/' (or be \"*\")"));
            }
        }
        if s.max_attachments > 1024 {
            bad("socketio.max_attachments", format!("{} is above 1024", s.max_attachments));
        }
        if s.recovery.enabled && s.recovery.max_buffered_packets == 0 {
            bad("socketio.recovery.max_buffered_packets", "must be above 0 when recovery is on".into());
        }
        if s.recovery.enabled && s.recovery.max_sessions == 0 {
            bad("socketio.recovery.max_sessions", "must be above 0 when recovery is on".into());
        }
        if s.recovery.replicas > 16 {
            bad("socketio.recovery.replicas", format!("{} is above 16", s.recovery.replicas));
        }
        for origin in &self.cors.allowed_origins {
            if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                bad(
                    "cors.allowed_origins",
                    format!("{origin:?} must be \"*\" or start with http:// or https://"),
                );
            }
        }
        if self.cors.credentials && self.cors.allowed_origins.iter().any(|o| o == "*") {
            bad("cors.credentials", "browsers refuse credentials with origin \"*\"; list the origins".into());
        }
        let u = &self.upstream;
        match (u.mode, &u.webhook_url) {
            (UpstreamMode::Webhook, None) => {
                bad("upstream.webhook_url", "is required when upstream.mode = \"webhook\"".into())
            }
            (_, Some(url)) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                bad("upstream.webhook_url", format!("{url:?} must be an http:// or https:// URL"))
            }
            _ => {}
        }
        if u.webhook_timeout_ms == 0 || u.webhook_max_in_flight == 0 {
            bad("upstream", "webhook_timeout_ms and webhook_max_in_flight must be above 0".into());
        }
        let l = &self.limits;
        if let Some(h) = &l.trusted_proxy_header {
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if h.is_empty() || !h.chars().all(token) {
                bad(
                    "limits.trusted_proxy_header",
                    format!("{h:?} is not an HTTP header name (like \"x-forwarded-for\")"),
                );
            }
        }
        if l.trusted_proxy_hops == 0 || l.trusted_proxy_hops > 16 {
            bad("limits.trusted_proxy_hops", format!("{} is outside 1..=16", l.trusted_proxy_hops));
        }
        if l.max_tracked_ips == 0 {
            bad("limits.max_tracked_ips", "must be at least 1".into());
        }
        if l.connections_per_ip as usize > self.engine.max_sessions {
            bad(
                "limits.connections_per_ip",
                format!(
                    "{} is above engine.max_sessions ({}); use 0 for unlimited",
                    l.connections_per_ip, self.engine.max_sessions
                ),
            );
        }
        if self.auth.access_keys.len() > 2 {
            bad(
                "auth.access_keys",
                format!("holds {} keys; at most two (primary, secondary)", self.auth.access_keys.len()),
            );
        }
        for key in &self.auth.access_keys {
            if key.len() < 16 {
                bad("auth.access_keys", "each key needs at least 16 characters".into());
            }
        }
        for grant in &self.permissions {
            if grant.namespace != "*" && !grant.namespace.starts_with('/') {
                bad("permissions.namespace", format!("{:?} must start with '/'", grant.namespace));
            }
        }
        if let Some(ep) = &self.public_endpoint {
            if !(ep.starts_with("http://") || ep.starts_with("https://")) {
                bad("public_endpoint", format!("{ep:?} must start with http:// or https://"));
            }
        }
        if self.workers == Some(0) {
            bad("workers", "must be at least 1".into());
        }
        let c = &self.cluster;
        if c.gossip_interval_ms.is_some_and(|ms| !(10..=60_000).contains(&ms)) {
            bad("cluster.gossip_interval_ms", "must be within 10..=60000".into());
        }
        if c.mesh_queue_frames == Some(0) {
            bad("cluster.mesh_queue_frames", "must be at least 1".into());
        }
        if c.quorum_forget_ms.is_some_and(|ms| !(1000..=3_600_000).contains(&ms)) {
            bad("cluster.quorum_forget_ms", "must be within 1000..=3600000".into());
        }
        if c.request_timeout_ms == Some(0) {
            bad("cluster.request_timeout_ms", "must be above 0".into());
        }
        if c.seeds
            .iter()
            .any(|s| s.rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err()))
        {
            bad("cluster.seeds", "each seed is host:port (the gossip address of a node)".into());
        }
        if c.secret.is_some() && c.secret_file.is_some() {
            bad("cluster.secret", "set either secret or secret_file, not both".into());
        }
        if let Some(secret) = &c.secret {
            if secret.trim().len() < MIN_CLUSTER_SECRET_LEN {
                bad(
                    "cluster.secret",
                    format!(
                        "needs at least {MIN_CLUSTER_SECRET_LEN} characters (generate one with `openssl rand -hex 32`)"
                    ),
                );
            }
        }
        if c.secret_file.as_deref().is_some_and(|f| f.trim().is_empty()) {
            bad("cluster.secret_file", "is an empty path".into());
        }
        self.admin_ui.problems(&self.path, &mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

//! The official Socket.IO Admin UI (`@socket.io/admin-ui`), natively: the hub serves the UI's
//! server protocol on `admin_ui.namespace` itself (a `state::InternalNamespace`), in every
//! dispatch mode and across the cluster, with no application code. See `docs/admin-ui.md`.
//!
//! - `auth.rs`: username + bcrypt hash, self-verifying `session` ids;
//! - `stats.rs`: this node's `server_stats` (each node emits its own every
//!   `stats_interval_ms` to the admin namespace of every node, through `Ops::emit`);
//! - `commands.rs`: `emit`, `join`, `leave`, `_disconnect` → the cluster-wide `Ops`;
//! - `dev.rs`: development mode (`all_sockets` and live socket events);
//! - `assets.rs`: the UI's static files (embedded at build time, or from a directory).
//!
//! Invariants: nothing here fans out to other nodes except through `Ops`; in production mode
//! the Admin UI costs nothing per client message (the aggregates are counter differences);
//! the UI's commands are refused entirely when `readonly`.

pub mod assets;
pub mod auth;
pub mod commands;
pub mod dev;
pub mod stats;

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use socketio_hub_config::{AdminUiConfig, AdminUiMode};
use tokio::sync::mpsc;

use self::auth::{AuthError, Credentials};
use self::commands::Command;
use crate::auth::AccessKeys;
use crate::engine::{Conn, Delivery};
use crate::metrics::Metrics;
use crate::ops::Ops;
use crate::state::{Args, Hub, InternalNamespace, Selector, Socket};

/// The Admin UI server side of one node.
pub struct AdminUi {
    config: AdminUiConfig,
    credentials: Option<Credentials>,
    ops: OnceLock<Ops>,
    metrics: Arc<Metrics>,
    /// This node's latest `server_stats` without its aggregates, for a UI that just connected.
    last_stats: Mutex<Option<Value>>,
    dev_rx: Mutex<Option<mpsc::Receiver<dev::DevEvent>>>,
    me: Weak<AdminUi>,
}

/// The features the UI enables its controls by (its `Feature` enum).
fn features(config: &AdminUiConfig) -> Vec<&'static str> {
    let mut f = match config.readonly {
        true => Vec::new(),
        false => vec!["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"],
    };
    f.push("AGGREGATED_EVENTS");
    if config.mode == AdminUiMode::Development {
        f.push("ALL_EVENTS");
    }
    f
}

fn one_arg(value: Value) -> Args {
    Args { json: Value::Array(vec![value]).to_string(), attachments: Vec::new() }
}

impl AdminUi {
    /// The Admin UI of `hub` (reading the password hash file), installed as its internal
    /// namespace (and, in development mode, its socket observer). `None` when disabled.
    pub fn install(hub: &Arc<Hub>, keys: &AccessKeys) -> Result<Option<Arc<AdminUi>>, AuthError> {
        let config = &hub.config.admin_ui;
        if !config.enabled {
            return Ok(None);
        }
        let credentials = Credentials::load(config, keys)?;
        if credentials.is_none() {
            tracing::warn!(namespace = %config.namespace, "admin UI authentication is off: anyone reaching the hub can administer it");
        }
        let (observer, dev_rx) = match config.mode {
            AdminUiMode::Development => {
                let (o, rx) = dev::Observer::new(&config.namespace, hub.metrics.clone());
                (Some(o), Some(rx))
            }
            AdminUiMode::Production => (None, None),
        };
        let ui = Arc::new_cyclic(|me| AdminUi {
            config: config.clone(),
            credentials,
            ops: OnceLock::new(),
            metrics: hub.metrics.clone(),
            last_stats: Mutex::new(None),
            dev_rx: Mutex::new(dev_rx),
            me: me.clone(),
        });
        // Set once, here, before any client can connect.
        let _ = hub.internal.set(ui.clone());
        if let Some(o) = observer {
            let _ = hub.observer.set(o);
        }
        Ok(Some(ui))
    }

    /// Start the stats reporter (and the development-mode broadcaster) on `ops`, reporting as
    /// `server_id` (the node name).
    pub fn start(self: &Arc<Self>, ops: Ops, server_id: String) -> Vec<tokio::task::JoinHandle<()>> {
        let _ = self.ops.set(ops.clone());
        let mut tasks = Vec::new();
        if let Some(rx) = self.dev_rx.lock().take() {
            tasks.push(tokio::spawn(dev::broadcast(ops.clone(), self.config.namespace.clone(), rx)));
        }
        let ui = self.clone();
        tasks.push(tokio::spawn(async move { ui.report_stats(ops, server_id).await }));
        tracing::info!(namespace = %self.config.namespace, mode = ?self.config.mode, "admin UI namespace served");
        tasks
    }

    async fn report_stats(self: Arc<Self>, ops: Ops, server_id: String) {
        let mut reporter = stats::StatsReporter::new(server_id, &ops.hub.metrics);
        let mut tick = tokio::time::interval(Duration::from_millis(self.config.stats_interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let everyone = Selector::default();
        loop {
            tick.tick().await;
            let now_ms = crate::clock::since_epoch().as_millis() as u64;
            let report = reporter.report(&ops.hub, now_ms);
            let mut quiet = report.clone();
            quiet["aggregatedEvents"] = json!([]);
            *self.last_stats.lock() = Some(quiet);
            ops.emit(&self.config.namespace, &everyone, "server_stats", &one_arg(report), Delivery::Reliable);
        }
    }

    /// Decide a connect (credentials or session id), then greet the admitted socket.
    async fn connect_async(self: Arc<Self>, hub: Arc<Hub>, conn: Arc<Conn>, auth: Map<String, Value>) {
        let ns = &self.config.namespace;
        let now = crate::clock::since_epoch();
        let new_session = match &self.credentials {
            None => None,
            Some(c) => {
                let session = auth.get("sessionId").and_then(Value::as_str);
                if session.is_some_and(|s| c.session_valid(s, now)) {
                    self.metrics.admin_ui_logins.with_label_values(&["session"]).inc();
                    None
                } else {
                    let text = |k: &str| auth.get(k).and_then(Value::as_str).unwrap_or("");
                    let ok = !text("username").is_empty()
                        && c.password_valid(text("username"), text("password")).await;
                    if !ok {
                        self.metrics.admin_ui_logins.with_label_values(&["invalid"]).inc();
                        hub.reject(&conn, ns, "unauthorized", "invalid credentials", None);
                        return;
                    }
                    self.metrics.admin_ui_logins.with_label_values(&["password"]).inc();
                    Some(c.new_session(now))
                }
            }
        };
        let Some(socket) = hub.admit_internal(&conn, ns) else { return };
        if let Some(s) = new_session {
            hub.emit_to(&socket, "session", &one_arg(Value::from(s)));
        }
        hub.emit_to(&socket, "config", &one_arg(json!({ "supportedFeatures": features(&self.config) })));
        let cached = self.last_stats.lock().clone();
        if let Some(stats) = cached {
            hub.emit_to(&socket, "server_stats", &one_arg(stats));
        }
        if self.config.mode == AdminUiMode::Development {
            if let Some(ops) = self.ops.get() {
                let sockets = dev::all_sockets(ops).await;
                hub.emit_to(&socket, "all_sockets", &one_arg(Value::Array(sockets)));
            }
        }
    }
}

impl InternalNamespace for AdminUi {
    fn name(&self) -> &str {
        &self.config.namespace
    }

    fn connect(&self, hub: &Arc<Hub>, conn: &Arc<Conn>, auth: Map<String, Value>) {
        let Some(me) = self.me.upgrade() else { return };
        tokio::spawn(me.connect_async(hub.clone(), conn.clone(), auth));
    }

    fn event(&self, _hub: &Arc<Hub>, socket: &Arc<Socket>, event: &str, args: Args) {
        let label = Command::label(event);
        let result = match (self.config.readonly, self.ops.get()) {
            (true, _) => Err("the admin UI is read-only (admin_ui.readonly)".to_string()),
            (false, None) => Err("the hub is starting".to_string()),
            (false, Some(ops)) => Command::parse(event, &args).map(|c| c.run(ops)),
        };
        let outcome = if result.is_ok() { "ok" } else { "refused" };
        self.metrics.admin_ui_commands.with_label_values(&[label, outcome]).inc();
        match result {
            Ok(()) => {
                let shown: String = args.json.chars().take(200).collect();
                tracing::info!(admin = %socket.id, command = event, args = %shown, "admin UI command")
            }
            Err(e) => {
                tracing::info!(admin = %socket.id, command = event, error = %e, "admin UI command refused")
            }
        }
    }
}

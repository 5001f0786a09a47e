//! socketio-hub's data plane: a Socket.IO v4 server that holds client connections on behalf
//! of applications. See ARCHITECTURE.md for the map; `start` is the entry point.

pub mod admin;
pub mod admin_ui;
pub mod api;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod demo;
pub mod engine;
pub mod frame;
pub mod ids;
pub mod limits;
pub mod metrics;
pub mod ops;
pub mod state;
pub mod transport;
pub mod upstream;
pub mod urlencoded;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use socketio_hub_config::{HubConfig, PermissionGrant, UpstreamMode};
use warp::Filter;

use crate::auth::AccessKeys;
use crate::engine::{CloseReason, Engine, EngineSettings};
use crate::ids::NodeTag;
use crate::metrics::Metrics;
use crate::ops::Ops;
use crate::state::{Dispatch, Hub};
use crate::upstream::{Link, NoUpstream, Webhook};

/// Why the hub could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Access keys could not be loaded.
    #[error(transparent)]
    Keys(#[from] auth::KeyError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The configured upstream cannot be built.
    #[error("upstream: {0}")]
    Upstream(String),
    /// Gossip or the mesh could not start.
    #[error("cluster: {0}")]
    Cluster(#[from] cluster::ClusterError),
    /// The Admin UI's credentials or static files are missing or invalid.
    #[error("{0}")]
    AdminUi(String),
}

/// A running hub.
pub struct Running {
    /// The node.
    pub hub: Arc<Hub>,
    /// Where clients connect.
    pub client_addr: SocketAddr,
    /// Where the admin endpoints are.
    pub admin_addr: SocketAddr,
    /// The cluster layer, when `cluster.seeds` is set.
    pub cluster: Option<Arc<cluster::Cluster>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn node_name(config: &HubConfig) -> String {
    config
        .cluster
        .node_name
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "hub".into())
}

/// Start a hub from a validated configuration.
pub async fn start(mut config: HubConfig) -> Result<Running, StartError> {
    if config.demo_page && !config.permissions.iter().any(|g| g.namespace == demo::DEMO_NAMESPACE) {
        // The demo chat works through client permissions on its own namespace only.
        config.permissions.push(PermissionGrant {
            namespace: demo::DEMO_NAMESPACE.into(),
            join: vec!["*".into()],
            emit: vec!["*".into()],
        });
    }
    let config = Arc::new(config);
    let keys = AccessKeys::load(&config.auth)?;
    let metrics = Arc::new(Metrics::new());
    let node = node_name(&config);
    let generation = clock::since_epoch().as_nanos() as u64;
    let mut link: Option<Link> = None;
    let dispatch = match config.upstream.mode {
        UpstreamMode::None => Dispatch::App(Arc::new(NoUpstream::new(metrics.clone()))),
        UpstreamMode::Webhook => {
            let url = config
                .upstream
                .webhook_url
                .clone()
                .ok_or_else(|| StartError::Upstream("no webhook_url".into()))?;
            let webhook = Webhook::new(
                url,
                Duration::from_millis(config.upstream.webhook_timeout_ms),
                config.upstream.webhook_max_in_flight,
                keys.clone(),
                metrics.clone(),
                &node,
                config.socketio.max_attachments,
            )
            .map_err(|e| StartError::Upstream(e.to_string()))?;
            Dispatch::App(Arc::new(webhook))
        }
        UpstreamMode::Link => {
            let l = Link::new(
                keys.clone(),
                &metrics,
                &node,
                Duration::from_millis(config.socketio.connect_timeout_ms),
                config.socketio.max_attachments,
            );
            let router = l.router();
            link = Some(l);
            Dispatch::Link(router)
        }
    };
    let engine =
        Engine::new(EngineSettings::for_hub(&config), NodeTag::derive(&node, generation), metrics.clone());
    engine.set_limits(Arc::new(limits::Limits::new(&config.limits, metrics.clone())));
    let hub = Hub::new(config.clone(), engine.clone(), dispatch, metrics, keys.clone());
    // Before any listener: the admin namespace is known from the first packet on.
    let admin_ui = admin_ui::AdminUi::install(&hub, &keys).map_err(|e| StartError::AdminUi(e.to_string()))?;
    let ui_files = admin_ui::assets::source(&config.admin_ui).map_err(StartError::AdminUi)?;

    let listener =
        transport::bind(config.listen).map_err(|source| StartError::Bind { addr: config.listen, source })?;
    let client_addr =
        listener.local_addr().map_err(|source| StartError::Bind { addr: config.listen, source })?;
    let admin = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .map_err(|source| StartError::Bind { addr: config.admin_listen, source })?;
    let admin_addr =
        admin.local_addr().map_err(|source| StartError::Bind { addr: config.admin_listen, source })?;

    // Cluster: with seeds, join the others; requests for their sessions are forwarded.
    let cluster = match config.cluster.seeds.is_empty() {
        true => None,
        false => Some(cluster::Cluster::start(&config, &hub, &node, generation, client_addr).await?),
    };
    // The one operations layer every front door (REST, server links, client commands) uses.
    let ops = Ops::new(hub.clone(), cluster.clone());
    if let Some(l) = &link {
        l.attach(&ops);
    }
    let mut tasks = Vec::new();
    if let Some(ui) = &admin_ui {
        tasks.extend(ui.start(ops.clone(), node.clone()));
    }
    let ui_on = ui_files.is_some();
    let ui_routes = admin_ui::assets::routes(
        &config.admin_ui.ui_path,
        ui_files.unwrap_or(admin_ui::assets::Source::Embedded),
    );
    let ui_routes = warp::any()
        .and_then(move || async move {
            if ui_on {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
        .and(ui_routes);
    let demo_on = config.demo_page;
    let other = upstream::link::route(link)
        .or(ui_routes)
        .or(api::routes(ops.clone()))
        .or(demo::client_bundle(&config.path))
        .or(warp::any()
            .and_then(move || async move {
                if demo_on {
                    Ok(())
                } else {
                    Err(warp::reject::not_found())
                }
            })
            .untuple_one()
            .and(demo::page()))
        .map(warp::Reply::into_response)
        .boxed();
    let forward = cluster.clone().map(|c| Arc::new(cluster::Forwarder(c)) as Arc<dyn transport::Forward>);
    tasks.push(tokio::spawn(transport::serve_with(engine.clone(), listener, other, forward)));
    let admin_routes = admin::routes(hub.clone()).or(cluster::admin_route(cluster.clone()));
    let shutdown = engine.shutdown.clone();
    tasks.push(tokio::spawn(async move {
        warp::serve(admin_routes)
            .incoming(admin)
            .graceful(async move { shutdown.cancelled().await })
            .run()
            .await;
    }));
    tasks.push(engine::spawn_sweeper(engine.clone()));
    match (&cluster, config.socketio.recovery.enabled && !config.cluster.seeds.is_empty()) {
        // Recovery in a cluster: a node that just joined holds only what was emitted since;
        // it turns ready once it has been linked to a peer for the recovery settle time, so a
        // rolling update does not send clients that lag behind to a node that cannot replay.
        (Some(c), true) => tasks.push(tokio::spawn(ready_when_settled(hub.clone(), c.clone()))),
        _ => hub.ready.store(true, Ordering::SeqCst),
    }
    tracing::info!(node = %node, %client_addr, %admin_addr, "hub started");
    Ok(Running { hub, client_addr, admin_addr, cluster, tasks })
}

async fn ready_when_settled(hub: Arc<Hub>, cluster: Arc<cluster::Cluster>) {
    // A node that finds no peer within a few gossip rounds starts a cluster: nothing to settle.
    let alone_until =
        tokio::time::Instant::now() + (cluster.settings.gossip_interval * 5).max(Duration::from_secs(1));
    while cluster.peer_ids().is_empty() && tokio::time::Instant::now() < alone_until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !cluster.peer_ids().is_empty() {
        tokio::time::sleep(Duration::from_millis(state::recovery::SETTLE_MS)).await;
    }
    if !hub.engine.is_draining() && !hub.engine.is_fenced() {
        hub.ready.store(true, Ordering::SeqCst);
        tracing::info!("recovery streams settled: ready");
    }
}

impl Running {
    /// Drain (lame duck): report not ready and refuse new sessions at once, then close the
    /// clients evenly paced over `drain_period_ms` (each told the server is shutting down, so
    /// it reconnects — to another node behind a balancer), close any left at the end, wait up
    /// to `grace` (2 s at most) for the last close frames to be written, and stop.
    pub async fn shutdown(self, grace: Duration) {
        let hub = &self.hub;
        hub.begin_shutdown();
        let started = tokio::time::Instant::now();
        let period = Duration::from_millis(hub.config.drain_period_ms).min(grace);
        let total = hub.engine.sessions.len();
        tracing::info!(sessions = total, period_ms = period.as_millis() as u64, "draining");
        state::drain::close_paced(hub, period, CloseReason::ServerShutdown, || true).await;
        hub.engine.close_all(CloseReason::ServerShutdown);
        // Closing queues a close frame per WebSocket; give the connection tasks time to write.
        let flush = grace.saturating_sub(started.elapsed()).min(Duration::from_secs(2));
        tokio::time::sleep(flush).await;
        hub.engine.stop();
        for t in self.tasks {
            t.abort();
        }
        if let Some(c) = &self.cluster {
            c.stop();
        }
    }
}

//! socketio-hub-operator: runs the SocketIOHub controller with leader election, metrics and
//! health endpoints, and a graceful shutdown on SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use socketio_hub_operator::crd::{SocketIOHub, DEFAULT_IMAGE};
use socketio_hub_operator::leader::{LeaderElector, Leadership, LeaseConfig};
use socketio_hub_operator::metrics::Metrics;
use socketio_hub_operator::podcost::{self, HttpLoad, PodCost};
use socketio_hub_operator::reconcile::{self, Context};
use socketio_hub_operator::render::RenderContext;
use socketio_hub_operator::server::{self, Readiness};
use tokio::sync::watch;

/// Kubernetes operator for SocketIOHub objects.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Image for hubs whose spec names none.
    #[arg(long, env = "SIOH_DEFAULT_IMAGE", default_value = DEFAULT_IMAGE)]
    default_image: String,
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    #[arg(long, env = "SIOH_METRICS_LISTEN", default_value = "0.0.0.0:8080")]
    metrics_listen: SocketAddr,
    /// Elect a leader through a Lease, so several replicas are safe. Off: this process reconciles.
    #[arg(long, env = "SIOH_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Name of the leader Lease.
    #[arg(long, env = "SIOH_LEASE_NAME", default_value = "socketio-hub-operator")]
    lease_name: String,
    /// Namespace of the leader Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// This replica's identity in the Lease and in Events. Default: the host name.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Lease duration in seconds.
    #[arg(long, env = "SIOH_LEASE_SECONDS", default_value_t = 15)]
    lease_seconds: u64,
    /// Seconds between re-checks of a hub without watch events.
    #[arg(long, env = "SIOH_RESYNC_SECONDS", default_value_t = 300)]
    resync_seconds: u64,
    /// Log format: `json` or `text`.
    #[arg(long, env = "SIOH_LOG_FORMAT", default_value = "json")]
    log_format: String,
    /// Seconds between reads of autoscaled hub pods' `/load`, which set their
    /// `controller.kubernetes.io/pod-deletion-cost`.
    #[arg(long, env = "SIOH_POD_COST_SECONDS", default_value_t = 15)]
    pod_cost_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // With both of rustls' providers compiled in (a `cargo build` of the workspace unifies the
    // data plane's aws-lc-rs with kube's ring), rustls picks none and the first TLS connection
    // panics ("Could not automatically determine the process-level CryptoProvider"): name one.
    // An error only means a provider is already installed, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match args.log_format.as_str() {
        "json" => tracing_subscriber::fmt().json().with_env_filter(filter).init(),
        "text" => tracing_subscriber::fmt().with_env_filter(filter).init(),
        other => anyhow::bail!("--log-format {other:?}: use json or text"),
    }
    if args.pod_cost_seconds == 0 {
        anyhow::bail!("--pod-cost-seconds must be at least 1");
    }
    if args.lease_seconds < 3 {
        anyhow::bail!("--lease-seconds {} is too short; use at least 3", args.lease_seconds);
    }
    let identity = match args.identity.clone() {
        Some(id) => id,
        None => std::env::var("HOSTNAME")
            .unwrap_or_else(|_| format!("socketio-hub-operator-{}", std::process::id())),
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        let _ = stop_tx.send(true);
    });

    let metrics = Arc::new(Metrics::new());
    let ready = Readiness::default();
    let bound = server::serve(args.metrics_listen, metrics.clone(), ready.clone(), stopped(stop_rx.clone()))
        .await
        .with_context(|| format!("binding {}", args.metrics_listen))?;
    tracing::info!(%bound, "serving /metrics, /healthz, /readyz");

    let client = Client::try_default().await.context("connecting to the Kubernetes API server")?;

    let elector = args.leader_election.then(|| {
        LeaderElector::new(
            client.clone(),
            LeaseConfig {
                name: args.lease_name.clone(),
                namespace: args.lease_namespace.clone(),
                identity: identity.clone(),
                lease_duration: Duration::from_secs(args.lease_seconds),
                renew_every: Duration::from_secs((args.lease_seconds / 3).max(1)),
            },
        )
    });
    let (lost_tx, lost_rx) = watch::channel(false);
    if let Some(elector) = &elector {
        if !acquire(elector, &ready, stop_rx.clone()).await? {
            return Ok(());
        }
    }
    metrics.set_leader(true);

    let apis = reconcile::discover_apis(&client)
        .await
        .context("discovering the PodDisruptionBudget and HorizontalPodAutoscaler APIs")?;
    tracing::info!(pdb = %apis.pdb.api_version, hpa = %apis.hpa.api_version, "API versions");
    let recorder = Recorder::new(
        client.clone(),
        Reporter { controller: "socketio-hub-operator".into(), instance: Some(identity) },
    );
    let ctx = Arc::new(Context::new(
        client.clone(),
        RenderContext { default_image: args.default_image.clone() },
        metrics.clone(),
        recorder,
        apis,
        Duration::from_secs(args.resync_seconds),
    ));

    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=socketio-hub-operator");
    let controller = Controller::new(Api::<SocketIOHub>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Deployment>::all(client.clone()), owned.clone())
        .owns(Api::<ConfigMap>::all(client.clone()), owned.clone())
        .owns(Api::<Service>::all(client.clone()), owned)
        // A burst of child events (a rollout) collapses into one reconcile.
        .with_config(ControllerConfig::default().debounce(Duration::from_millis(200)))
        .graceful_shutdown_on({
            let (stop, lost) = (stop_rx.clone(), lost_rx.clone());
            async move {
                tokio::select! { _ = stopped(stop) => {}, _ = stopped(lost) => {} }
            }
        });

    // Forget hubs that were deleted, so the hubs-by-condition gauge counts only live ones.
    let store = controller.store();
    let pruner_metrics = metrics.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let live = store
                .state()
                .iter()
                .map(|h| format!("{}/{}", h.namespace().unwrap_or_default(), h.name_any()))
                .collect();
            pruner_metrics.retain_hubs(&live);
        }
    });

    // Autoscaled hubs: each pod's deletion cost follows its connection count.
    let cost = PodCost {
        client: client.clone(),
        source: Arc::new(HttpLoad::new(Duration::from_secs(2)).map_err(anyhow::Error::msg)?),
        metrics: metrics.clone(),
        concurrency: 16,
    };
    let cost_stop = {
        let (stop, lost) = (stop_rx.clone(), lost_rx.clone());
        async move {
            tokio::select! { _ = stopped(stop) => {}, _ = stopped(lost) => {} }
        }
    };
    tokio::spawn(podcost::run(
        cost,
        controller.store(),
        Duration::from_secs(args.pod_cost_seconds),
        cost_stop,
    ));

    if let Some(elector) = elector.as_ref() {
        let elector = LeaderElector::new(client.clone(), elector.config().clone());
        tokio::spawn(keep_leading(elector, lost_tx, stop_rx.clone()));
    }
    ready.set(true);
    tracing::info!("controller started");
    controller
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(hub = %obj, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile error"),
            }
        })
        .await;
    metrics.set_leader(false);
    ready.set(false);

    if *lost_rx.borrow() {
        anyhow::bail!("lost the leader Lease; exiting so that this replica restarts as a standby");
    }
    if let Some(elector) = &elector {
        if let Err(e) = elector.release().await {
            tracing::warn!(error = %e, "could not release the leader Lease; it will expire");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Wait until this replica leads. `Ok(false)`: shutdown came first.
async fn acquire(
    elector: &LeaderElector,
    ready: &Readiness,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<bool> {
    let mut last_holder = None;
    loop {
        match elector.try_acquire_or_renew().await {
            Ok(Leadership::Leading) => {
                tracing::info!(lease = %elector.config().name, "acquired the leader Lease");
                return Ok(true);
            }
            Ok(Leadership::Following { holder }) => {
                // A standby that can read the Lease is healthy and ready to take over.
                ready.set(true);
                if last_holder.as_ref() != Some(&holder) {
                    tracing::info!(%holder, "standing by; another replica leads");
                    last_holder = Some(holder);
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read or take the leader Lease"),
        }
        tokio::select! {
            _ = tokio::time::sleep(elector.config().renew_every) => {}
            _ = stop.changed() => return Ok(false),
        }
    }
}

/// Renew the Lease; signal `lost` when it could not be renewed for a whole lease duration.
async fn keep_leading(elector: LeaderElector, lost: watch::Sender<bool>, stop: watch::Receiver<bool>) {
    let mut last_renewed = Instant::now();
    while !*stop.borrow() {
        tokio::time::sleep(elector.config().renew_every).await;
        match elector.try_acquire_or_renew().await {
            Ok(Leadership::Leading) => last_renewed = Instant::now(),
            Ok(Leadership::Following { holder }) => {
                tracing::error!(%holder, "another replica took the leader Lease");
                let _ = lost.send(true);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not renew the leader Lease");
                if last_renewed.elapsed() >= elector.config().lease_duration {
                    let _ = lost.send(true);
                    return;
                }
            }
        }
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            // The sender is gone: nobody can ask us to stop any more.
            std::future::pending::<()>().await;
        }
    }
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the operator");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

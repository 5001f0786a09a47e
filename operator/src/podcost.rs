//! Pod-deletion cost: every autoscaled hub's pods carry
//! `controller.kubernetes.io/pod-deletion-cost` equal to their open connections, read from each
//! pod's `/load` on the admin port.
//!
//! The cost tells whoever removes a pod which one costs least to lose: the emptiest. Hub pods
//! run under a Deployment, whose ReplicaSet controller reads it: a scale-down removes the pod
//! with the fewest connections, which then drains (paced) — see docs/autoscaling.md.
//!
//! Split for testing: [`plan`] is pure (pods and their loads in, annotation writes out), the
//! load comes through the [`LoadSource`] trait (HTTP to the pods in production, anything in
//! unit tests), and [`run`] is the loop that lists pods and writes through the API server.
//!
//! Invariants: a pod's annotation is written only when its value changes, so a steady hub
//! causes no writes; a pod whose load cannot be read keeps its last cost (a failed scrape is
//! not an empty pod); only pods selected by the hub's labels, running, with an IP and not being
//! deleted are read; when a hub stops autoscaling, the operator removes the annotations it wrote.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use serde::Deserialize;
use serde_json::json;

use crate::crd::SocketIOHub;
use crate::metrics::Metrics;
use crate::render::{self, ADMIN_PORT};

/// The annotation the ReplicaSet controller reads to choose which pod to remove first (lowest).
pub const DELETION_COST_ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";
/// Field manager recorded for the annotation writes.
pub const COST_FIELD_MANAGER: &str = "socketio-hub-operator-pod-cost";

/// What a hub pod's `/load` reports that the cost needs (the hub sends more fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct PodLoad {
    /// Open client connections (Engine.IO sessions).
    pub connections: u64,
    /// Whether the pod is draining.
    #[serde(default)]
    pub draining: bool,
}

/// Where pod loads come from.
pub trait LoadSource: Send + Sync {
    /// The load of the hub pod whose admin port is `addr`.
    fn load(&self, addr: SocketAddr) -> BoxFuture<'_, Result<PodLoad, String>>;
}

/// Reads `http://<pod IP>:<admin port>/load`.
pub struct HttpLoad {
    client: reqwest::Client,
}

impl HttpLoad {
    /// A reader with a per-request `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(HttpLoad { client })
    }
}

impl LoadSource for HttpLoad {
    fn load(&self, addr: SocketAddr) -> BoxFuture<'_, Result<PodLoad, String>> {
        async move {
            let url = format!("http://{addr}/load");
            let resp = self.client.get(&url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!("GET {url}: HTTP {}", resp.status()));
            }
            let body = resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
            serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not a load report: {e}"))
        }
        .boxed()
    }
}

/// The deletion cost for `load`: the connection count (clamped to the annotation's int32). A
/// draining pod is going anyway; its count still ranks it.
pub fn deletion_cost(load: &PodLoad) -> i32 {
    i32::try_from(load.connections).unwrap_or(i32::MAX)
}

/// A hub pod the operator can read: its name, admin address and current cost annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Pod name.
    pub pod: String,
    /// `<pod IP>:<admin port>`.
    pub admin: SocketAddr,
    /// The annotation's current value, if any.
    pub current: Option<String>,
}

/// The pods of `pods` whose load can be read: running, with an IP, not being deleted. The admin
/// port is the hub container's port named `admin` (the rendered pods' 9090 otherwise).
pub fn targets(pods: &[Pod]) -> Vec<Target> {
    pods.iter()
        .filter_map(|p| {
            if p.metadata.deletion_timestamp.is_some() {
                return None;
            }
            let status = p.status.as_ref()?;
            if status.phase.as_deref() != Some("Running") {
                return None;
            }
            let ip: IpAddr = status.pod_ip.as_deref()?.parse().ok()?;
            let port = p
                .spec
                .as_ref()
                .into_iter()
                .flat_map(|s| s.containers.iter())
                .flat_map(|c| c.ports.iter().flatten())
                .find(|port| port.name.as_deref() == Some("admin"))
                .map(|port| port.container_port)
                .unwrap_or(ADMIN_PORT);
            let port = u16::try_from(port).ok()?;
            Some(Target {
                pod: p.name_any(),
                admin: SocketAddr::new(ip, port),
                current: p.annotations().get(DELETION_COST_ANNOTATION).cloned(),
            })
        })
        .collect()
}

/// The annotation writes that make each target's cost follow its load: `(pod, cost)` for every
/// target whose load was read and whose annotation differs. Targets without a load keep theirs.
pub fn plan(targets: &[Target], loads: &BTreeMap<String, PodLoad>) -> Vec<(String, String)> {
    targets
        .iter()
        .filter_map(|t| {
            let cost = deletion_cost(loads.get(&t.pod)?).to_string();
            (t.current.as_deref() != Some(cost.as_str())).then(|| (t.pod.clone(), cost))
        })
        .collect()
}

/// How the loop reads and writes.
pub struct PodCost {
    /// API client (the operator's service account: list and patch pods).
    pub client: Client,
    /// Where loads come from.
    pub source: Arc<dyn LoadSource>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Pods read at once.
    pub concurrency: usize,
}

impl PodCost {
    /// One pass over one autoscaled hub: list its pods, read their loads, write changed costs.
    /// Returns the number of annotations written.
    pub async fn update_hub(&self, hub: &SocketIOHub) -> Result<usize, kube::Error> {
        let (ns, name) = (hub.namespace().unwrap_or_default(), hub.name_any());
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let list = pods.list(&ListParams::default().labels(&render::selector_string(&name))).await?;
        let targets = targets(&list.items);
        let reads: Vec<(String, Result<PodLoad, String>)> =
            futures::stream::iter(targets.iter().map(|t| (t.pod.clone(), t.admin)).collect::<Vec<_>>())
                .map(|(pod, addr)| {
                    let source = self.source.clone();
                    async move {
                        let res = source.load(addr).await;
                        (pod, res)
                    }
                })
                .buffer_unordered(self.concurrency.max(1))
                .collect()
                .await;
        let mut loads = BTreeMap::new();
        for (pod, res) in reads {
            self.metrics.load_scraped(res.is_ok());
            match res {
                Ok(load) => {
                    loads.insert(pod, load);
                }
                Err(e) => {
                    tracing::debug!(hub = %format!("{ns}/{name}"), %pod, error = %e, "cannot read pod load")
                }
            }
        }
        let writes = plan(&targets, &loads);
        let mut written = 0;
        for (pod, cost) in writes {
            if self.annotate(&pods, &pod, json!(cost)).await? {
                written += 1;
            }
        }
        Ok(written)
    }

    /// Remove the annotation from the pods of a hub that stopped autoscaling.
    pub async fn clear_hub(&self, ns: &str, name: &str) -> Result<(), kube::Error> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let list = pods.list(&ListParams::default().labels(&render::selector_string(name))).await?;
        for p in list.items.iter().filter(|p| p.annotations().contains_key(DELETION_COST_ANNOTATION)) {
            self.annotate(&pods, &p.name_any(), serde_json::Value::Null).await?;
        }
        Ok(())
    }

    /// Set (or with `null`, remove) the cost of `pod`. A merge patch, never an apply: a pod
    /// deleted meanwhile (a scale-down) must stay deleted, and answers 404 (`Ok(false)`).
    async fn annotate(
        &self,
        pods: &Api<Pod>,
        pod: &str,
        value: serde_json::Value,
    ) -> Result<bool, kube::Error> {
        let patch = json!({ "metadata": { "annotations": { DELETION_COST_ANNOTATION: value } } });
        let params = PatchParams { field_manager: Some(COST_FIELD_MANAGER.into()), ..PatchParams::default() };
        let res = pods.patch(pod, &params, &Patch::Merge(&patch)).await;
        self.metrics.cost_updated(res.is_ok());
        match res {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Every `every`, update the costs of every autoscaled hub in `hubs`, until `stop` resolves.
pub async fn run(
    cost: PodCost,
    hubs: Store<SocketIOHub>,
    every: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut annotated: HashSet<(String, String)> = HashSet::new();
    let work = async {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let mut live = HashSet::new();
            for hub in hubs.state() {
                let key = (hub.namespace().unwrap_or_default(), hub.name_any());
                if !hub.spec.autoscaling.enabled || hub.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                live.insert(key.clone());
                match cost.update_hub(&hub).await {
                    Ok(n) if n > 0 => {
                        tracing::debug!(hub = %format!("{}/{}", key.0, key.1), written = n, "pod costs")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(hub = %format!("{}/{}", key.0, key.1), error = %e, "pod costs not updated")
                    }
                }
                annotated.insert(key);
            }
            let stale: Vec<_> = annotated.difference(&live).cloned().collect();
            for (ns, name) in stale {
                // A deleted hub's pods go with it; one that stopped autoscaling keeps its pods.
                let still_there = hubs
                    .state()
                    .iter()
                    .any(|h| h.namespace().as_deref() == Some(ns.as_str()) && h.name_any() == name);
                let cleared = if still_there { cost.clear_hub(&ns, &name).await } else { Ok(()) };
                match cleared {
                    Ok(()) => {
                        annotated.remove(&(ns, name));
                    }
                    Err(e) => {
                        tracing::warn!(hub = %format!("{ns}/{name}"), error = %e, "pod costs not removed")
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = work => {}
        _ = stop => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, phase: &str, ip: Option<&str>, cost: Option<&str>, admin: Option<i32>) -> Pod {
        let mut annotations = serde_json::Map::new();
        if let Some(c) = cost {
            annotations.insert(DELETION_COST_ANNOTATION.into(), json!(c));
        }
        let ports: Vec<_> =
            admin.into_iter().map(|p| json!({ "name": "admin", "containerPort": p })).collect();
        serde_json::from_value(json!({
            "metadata": { "name": name, "annotations": annotations },
            "spec": { "containers": [{ "name": "hub", "image": "x", "ports": ports }] },
            "status": { "phase": phase, "podIP": ip },
        }))
        .unwrap()
    }

    #[test]
    fn only_running_pods_with_an_ip_are_read_on_their_admin_port() {
        let pods = [
            pod("a", "Running", Some("10.0.0.1"), None, Some(9191)),
            pod("b", "Running", Some("10.0.0.2"), Some("7"), None),
            pod("c", "Pending", None, None, Some(9090)),
            pod("d", "Running", None, None, Some(9090)),
            pod("e", "Succeeded", Some("10.0.0.5"), None, Some(9090)),
        ];
        let t = targets(&pods);
        assert_eq!(
            t,
            vec![
                Target { pod: "a".into(), admin: "10.0.0.1:9191".parse().unwrap(), current: None },
                Target {
                    pod: "b".into(),
                    admin: "10.0.0.2:9090".parse().unwrap(),
                    current: Some("7".into())
                },
            ]
        );
        let mut deleting = pod("f", "Running", Some("10.0.0.6"), None, None);
        deleting.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        assert!(targets(&[deleting]).is_empty(), "a pod being deleted is not read");
    }

    #[test]
    fn plan_writes_changed_costs_only_and_keeps_unread_pods() {
        let t = |pod: &str, current: Option<&str>| Target {
            pod: pod.into(),
            admin: "10.0.0.1:9090".parse().unwrap(),
            current: current.map(String::from),
        };
        let targets = [t("same", Some("5")), t("changed", Some("5")), t("new", None), t("unread", Some("9"))];
        let load = |connections| PodLoad { connections, draining: false };
        let loads = BTreeMap::from([
            ("same".to_string(), load(5)),
            ("changed".to_string(), load(0)),
            ("new".to_string(), load(12)),
        ]);
        assert_eq!(plan(&targets, &loads), vec![("changed".into(), "0".into()), ("new".into(), "12".into())]);
    }

    #[test]
    fn cost_is_the_connection_count_clamped_to_int32() {
        assert_eq!(deletion_cost(&PodLoad { connections: 0, draining: false }), 0);
        assert_eq!(deletion_cost(&PodLoad { connections: 40_000, draining: true }), 40_000);
        assert_eq!(deletion_cost(&PodLoad { connections: u64::MAX, draining: false }), i32::MAX);
    }

    #[test]
    fn the_hub_load_report_parses() {
        let body = r#"{"connections":3,"polling":1,"websocket":2,"sockets":4,"capacity":1000000,"ready":true,"draining":false}"#;
        let load: PodLoad = serde_json::from_str(body).unwrap();
        assert_eq!(load, PodLoad { connections: 3, draining: false });
    }
}

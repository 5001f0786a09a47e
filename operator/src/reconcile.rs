//! The controller: turns a `SocketIOHub` into running objects and reports what happened.
//!
//! One reconcile is: `render(hub)`; make sure the access-key Secret and the cluster Secret exist
//! (create each with fresh keys when absent, never touch an existing one); server-side apply every rendered object with
//! one field manager (`force`, so hand edits of fields we own are reverted: drift repair); read
//! the StatefulSet back; derive the conditions; write status only if it changed; publish an
//! Event for each condition that changed status or reason.
//!
//! Invariants: this module is the only one that talks to the API server about hubs. An invalid
//! spec is not an error of the controller: it becomes `Degraded=True` and a slow resync, not a
//! retry loop. API errors back off per object (1 s doubling to 5 min), reset on success.
//! Guarantees: an unchanged hub causes no writes (status and Events are compared first).
//! Caveats: the PodDisruptionBudget and HorizontalPodAutoscaler API versions are discovered at
//! start-up (`policy/v1`, or `policy/v1beta1` on servers before 1.21; `autoscaling/v2`, or
//! `autoscaling/v2beta2` on servers before 1.23).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde_json::json;

use crate::crd::{SocketIOHub, SocketIOHubStatus};
use crate::metrics::{Metrics, ReconcileResult};
use crate::render::{self, AccessKeyPair, RenderContext, RenderError, Rendered};
use crate::status::{self, Outcome};

/// The one field manager of every object the operator writes.
pub const FIELD_MANAGER: &str = "socketio-hub-operator";

/// Why a reconcile failed (and will be retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the API server failed.
    #[error("{action}: {source}")]
    Kube {
        /// What the operator was doing.
        action: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The object lacks metadata the API server always sets.
    #[error(transparent)]
    Render(#[from] RenderError),
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

/// Everything a reconcile needs besides the hub.
pub struct Context {
    /// API client (the operator's service account).
    pub client: Client,
    /// Operator-wide render settings.
    pub render: RenderContext,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Event publisher.
    pub recorder: Recorder,
    /// The PodDisruptionBudget API the server serves.
    pub pdb_api: ApiResource,
    /// The HorizontalPodAutoscaler API the server serves.
    pub hpa_api: ApiResource,
    /// How often a healthy hub is re-checked even without watch events.
    pub resync: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context; the APIs come from [`discover_apis`].
    pub fn new(
        client: Client,
        render: RenderContext,
        metrics: Arc<Metrics>,
        recorder: Recorder,
        apis: Apis,
        resync: Duration,
    ) -> Self {
        Context {
            client,
            render,
            metrics,
            recorder,
            pdb_api: apis.pdb,
            hpa_api: apis.hpa,
            resync,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        // A panic elsewhere while holding this lock leaves counters that are still usable.
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The PodDisruptionBudget API of the server: `policy/v1`, else `policy/v1beta1` (same spec).
pub async fn discover_pdb_api(client: &Client) -> Result<ApiResource, kube::Error> {
    let v1 = GroupVersionKind::gvk("policy", "v1", "PodDisruptionBudget");
    match kube::discovery::oneshot::pinned_kind(client, &v1).await {
        Ok((ar, _)) => Ok(ar),
        Err(_) => {
            let beta = GroupVersionKind::gvk("policy", "v1beta1", "PodDisruptionBudget");
            Ok(kube::discovery::oneshot::pinned_kind(client, &beta).await?.0)
        }
    }
}

/// The HorizontalPodAutoscaler API of the server: `autoscaling/v2`, else `autoscaling/v2beta2`
/// (the same spec for every field the operator renders).
pub async fn discover_hpa_api(client: &Client) -> Result<ApiResource, kube::Error> {
    let v2 = GroupVersionKind::gvk("autoscaling", "v2", "HorizontalPodAutoscaler");
    match kube::discovery::oneshot::pinned_kind(client, &v2).await {
        Ok((ar, _)) => Ok(ar),
        Err(_) => {
            let beta = GroupVersionKind::gvk("autoscaling", "v2beta2", "HorizontalPodAutoscaler");
            Ok(kube::discovery::oneshot::pinned_kind(client, &beta).await?.0)
        }
    }
}

/// The API versions of the kinds whose version depends on the server.
#[derive(Debug, Clone)]
pub struct Apis {
    /// PodDisruptionBudget.
    pub pdb: ApiResource,
    /// HorizontalPodAutoscaler.
    pub hpa: ApiResource,
}

/// Discover [`Apis`] from the server.
pub async fn discover_apis(client: &Client) -> Result<Apis, kube::Error> {
    Ok(Apis { pdb: discover_pdb_api(client).await?, hpa: discover_hpa_api(client).await? })
}

fn key(hub: &SocketIOHub) -> String {
    format!("{}/{}", hub.namespace().unwrap_or_default(), hub.name_any())
}

/// Reconcile one hub (the `kube::runtime::Controller` reconciler).
pub async fn reconcile(hub: Arc<SocketIOHub>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_hub(&hub, &ctx).await;
    let elapsed = started.elapsed().as_secs_f64();
    match &result {
        Ok(Reconciled::Applied) => {
            ctx.metrics.reconciled(ReconcileResult::Ok, elapsed);
            ctx.failures().remove(&key(&hub));
        }
        Ok(Reconciled::Invalid) => {
            ctx.metrics.reconciled(ReconcileResult::Invalid, elapsed);
            ctx.failures().remove(&key(&hub));
        }
        Ok(Reconciled::Deleting) => {}
        Err(e) => {
            ctx.metrics.reconciled(ReconcileResult::Error, elapsed);
            tracing::warn!(hub = %key(&hub), error = %e, "reconcile failed");
        }
    }
    // An invalid spec waits for a change (or a slow resync, in case the fix is in a Secret):
    // retrying sooner could not succeed and would only load the API server.
    result.map(|_| Action::requeue(ctx.resync))
}

/// Backoff for a failed reconcile: per object, 1 s doubling to 5 min.
pub fn error_policy(hub: Arc<SocketIOHub>, _error: &Error, ctx: Arc<Context>) -> Action {
    let mut failures = ctx.failures();
    let n = failures.entry(key(&hub)).or_insert(0);
    *n = n.saturating_add(1);
    Action::requeue(backoff(*n))
}

/// The delay after the `n`th consecutive failure.
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs(1u64.checked_shl(n.saturating_sub(1)).unwrap_or(u64::MAX).min(300))
}

enum Reconciled {
    Applied,
    Invalid,
    Deleting,
}

async fn reconcile_hub(hub: &SocketIOHub, ctx: &Context) -> Result<Reconciled, Error> {
    if hub.metadata.deletion_timestamp.is_some() {
        // Owner references make the garbage collector remove every child; nothing to do.
        return Ok(Reconciled::Deleting);
    }
    let ns = hub.namespace().ok_or(RenderError::MissingMetadata("namespace"))?;
    let generation = hub.metadata.generation.unwrap_or(0);

    let rendered = match render::render(hub, &ctx.render) {
        Ok(r) => r,
        Err(RenderError::InvalidSpec(problems)) => {
            let msg = problems.join("; ");
            write_status(hub, ctx, generation, &Outcome::Invalid(msg), None).await?;
            return Ok(Reconciled::Invalid);
        }
        Err(e) => return Err(e.into()),
    };

    let applied = async {
        let access = Wanted {
            name: &rendered.secret_name,
            what: "access keys",
            reason: "SecretGenerated",
            check: render::check_secret,
        };
        if let Err(msg) =
            ensure_secret(hub, ctx, &ns, access, || render::render_secret(hub, &AccessKeyPair::generate()))
                .await?
        {
            return Ok(Err(msg));
        }
        let cluster = Wanted {
            name: &rendered.cluster_secret_name,
            what: "the cluster secret",
            reason: "ClusterSecretGenerated",
            check: render::check_cluster_secret,
        };
        let fresh = || render::render_cluster_secret(hub, &render::ClusterSecret::generate());
        if let Err(msg) = ensure_secret(hub, ctx, &ns, cluster, fresh).await? {
            return Ok(Err(msg));
        }
        apply_all(hub, ctx, &ns, &rendered).await.map(Ok)
    }
    .await;
    match applied {
        Ok(Ok(sts)) => {
            write_status(hub, ctx, generation, &Outcome::Applied(Box::new(sts)), Some(&rendered)).await?;
            Ok(Reconciled::Applied)
        }
        Ok(Err(msg)) => {
            write_status(hub, ctx, generation, &Outcome::Invalid(msg), Some(&rendered)).await?;
            Ok(Reconciled::Invalid)
        }
        Err(e) if namespace_terminating(&e) => {
            // The namespace is going away and takes the hub with it: nothing to retry.
            tracing::debug!(hub = %key(hub), "namespace is terminating; not reconciling");
            Ok(Reconciled::Deleting)
        }
        Err(e) => {
            // Best effort: tell the person why nothing moves; the original error is what counts.
            let outcome = Outcome::Failed(e.to_string());
            if let Err(status_err) = write_status(hub, ctx, generation, &outcome, Some(&rendered)).await {
                tracing::debug!(error = %status_err, "could not record the failure in status");
            }
            Err(e)
        }
    }
}

/// Whether the API server refused a write because the namespace is being deleted.
fn namespace_terminating(e: &Error) -> bool {
    match e {
        Error::Kube { source: kube::Error::Api(s), .. } => {
            s.code == 403
                && s.details
                    .as_ref()
                    .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
        }
        _ => false,
    }
}

/// A Secret the hub needs.
struct Wanted<'a> {
    name: &'a str,
    /// Its content, for the Event.
    what: &'static str,
    /// The Event's reason when it is generated.
    reason: &'static str,
    /// Whether an existing one is usable.
    check: fn(&Secret) -> Result<(), RenderError>,
}

/// Create the Secret from `fresh()` if absent; check it if present. `Ok(Err(msg))`: an unusable
/// Secret.
async fn ensure_secret(
    hub: &SocketIOHub,
    ctx: &Context,
    ns: &str,
    wanted: Wanted<'_>,
    fresh: impl FnOnce() -> Result<Secret, RenderError>,
) -> Result<Result<(), String>, Error> {
    let Wanted { name, what, reason, check } = wanted;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let existing = api.get_opt(name).await.map_err(kube_err(format!("reading Secret {name}")))?;
    let secret = match existing {
        Some(s) => s,
        None => {
            let fresh = fresh()?;
            // `create`, never apply: if someone created the Secret meanwhile, theirs wins (409).
            match api
                .create(
                    &PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() },
                    &fresh,
                )
                .await
            {
                Ok(created) => {
                    publish(
                        ctx,
                        hub,
                        EventType::Normal,
                        reason,
                        format!("generated {what} in Secret {name}"),
                    )
                    .await;
                    created
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    api.get(name).await.map_err(kube_err(format!("reading Secret {name}")))?
                }
                Err(e) => return Err(kube_err(format!("creating Secret {name}"))(e)),
            }
        }
    };
    Ok(check(&secret).map_err(|e| e.to_string()))
}

async fn apply<K>(api: &Api<K>, obj: &K, what: &str) -> Result<K, Error>
where
    K: Resource + Serialize + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(obj))
        .await
        .map_err(kube_err(format!("applying {what} {name}")))
}

async fn apply_all(hub: &SocketIOHub, ctx: &Context, ns: &str, r: &Rendered) -> Result<Deployment, Error> {
    let c = &ctx.client;
    apply(&Api::<ConfigMap>::namespaced(c.clone(), ns), &r.config_map, "ConfigMap").await?;
    let services = Api::<Service>::namespaced(c.clone(), ns);
    apply(&services, &r.headless_service, "Service").await?;
    apply(&services, &r.service, "Service").await?;
    let deployment =
        apply(&Api::<Deployment>::namespaced(c.clone(), ns), &r.deployment, "Deployment").await?;
    if crate::status::Rollout::of(&deployment).complete() {
        remove_legacy_stateful_set(hub, &Api::<StatefulSet>::namespaced(c.clone(), ns)).await?;
    }

    let pdb = r.pdb.as_ref().map(|p| serde_json::to_value(p).expect("typed objects serialize"));
    apply_optional(hub, ctx, ns, &ctx.pdb_api, "PodDisruptionBudget", pdb).await?;
    let hpa = r.hpa.as_ref().map(|h| serde_json::to_value(h).expect("typed objects serialize"));
    apply_optional(hub, ctx, ns, &ctx.hpa_api, "HorizontalPodAutoscaler", hpa).await?;
    Ok(deployment)
}

/// Operator versions before 0.2 ran hub pods as a StatefulSet named like the hub. Once the
/// Deployment that replaces it is ready, delete it (ours only: owned by this hub), so an
/// upgrade moves the clients over without a moment with no pod serving.
async fn remove_legacy_stateful_set(hub: &SocketIOHub, api: &Api<StatefulSet>) -> Result<(), Error> {
    let name = hub.name_any();
    let existing =
        api.get_opt(&name).await.map_err(kube_err("reading the legacy StatefulSet".to_string()))?;
    let uid = hub.metadata.uid.as_deref();
    if existing.is_some_and(|s| s.owner_references().iter().any(|o| Some(o.uid.as_str()) == uid)) {
        tracing::info!(hub = %name, "the Deployment is ready: deleting the StatefulSet it replaces");
        api.delete(&name, &DeleteParams::default())
            .await
            .map_err(kube_err(format!("deleting the legacy StatefulSet {name}")))?;
    }
    Ok(())
}

/// Apply `obj` (named like the hub) as the server's version of its kind, or, when the spec
/// turned it off (`None`), delete ours — never one someone else made.
async fn apply_optional(
    hub: &SocketIOHub,
    ctx: &Context,
    ns: &str,
    api: &ApiResource,
    kind: &str,
    obj: Option<serde_json::Value>,
) -> Result<(), Error> {
    let objects: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, api);
    let name = hub.name_any();
    match obj {
        Some(mut obj) => {
            // The versions the operator may meet share the spec it renders; only the version differs.
            obj["apiVersion"] = json!(api.api_version);
            objects
                .patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&obj))
                .await
                .map_err(kube_err(format!("applying {kind} {name}")))?;
        }
        None => {
            let existing = objects.get_opt(&name).await.map_err(kube_err(format!("reading {kind}")))?;
            let uid = hub.metadata.uid.as_deref();
            let ours =
                existing.is_some_and(|p| p.owner_references().iter().any(|o| Some(o.uid.as_str()) == uid));
            if ours {
                objects
                    .delete(&name, &DeleteParams::default())
                    .await
                    .map_err(kube_err(format!("deleting {kind} {name}")))?;
            }
        }
    }
    Ok(())
}

async fn write_status(
    hub: &SocketIOHub,
    ctx: &Context,
    generation: i64,
    outcome: &Outcome,
    rendered: Option<&Rendered>,
) -> Result<(), Error> {
    let old = hub.status.clone().unwrap_or_default();
    let now = Time(Timestamp::now());
    let conditions = status::conditions(generation, outcome, &old.conditions, &now);
    let mut new = SocketIOHubStatus {
        observed_generation: Some(generation),
        conditions,
        replicas: Some(hub.spec.replicas),
        // Keep what we knew when this reconcile learned nothing new about the pods.
        ready_replicas: old.ready_replicas,
        replicas_summary: None,
        endpoint: rendered.map(|r| r.endpoint.clone()).or(old.endpoint.clone()),
        connection_secret: rendered.map(|r| r.secret_name.clone()).or(old.connection_secret.clone()),
        config_hash: rendered.map(|r| r.config_hash.clone()).or(old.config_hash.clone()),
        selector: rendered.map(|r| r.selector.clone()).or(old.selector.clone()),
    };
    if let Outcome::Applied(sts) = outcome {
        new.ready_replicas = Some(status::Rollout::of(sts).ready);
    }
    new.replicas_summary = Some(format!("{}/{}", new.ready_replicas.unwrap_or(0), hub.spec.replicas));

    let transitions = status::transitions(&old.conditions, &new.conditions);
    ctx.metrics.hub_state(
        &key(hub),
        Some(
            [status::READY, status::PROGRESSING, status::DEGRADED]
                .map(|t| status::is_true(&new.conditions, t)),
        ),
    );
    if new == old {
        return Ok(());
    }
    let api: Api<SocketIOHub> = Api::namespaced(ctx.client.clone(), &hub.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": SocketIOHub::api_version(&()),
        "kind": SocketIOHub::kind(&()),
        "status": new,
    });
    api.patch_status(&hub.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(kube_err("writing SocketIOHub status"))?;

    for t in transitions {
        // A condition appearing in its quiet state (a new hub that is not Degraded) is no news.
        let first_seen = status::find(&old.conditions, &t.type_).is_none();
        if first_seen && t.type_ == status::DEGRADED && t.status == "False" {
            continue;
        }
        // Only changes are announced, so a steady hub produces no Events.
        let warning = (t.type_ == status::DEGRADED && t.status == "True")
            || (t.type_ == status::READY
                && t.status == "False"
                && old.conditions.iter().any(|c| c.type_ == status::READY && c.status == "True"));
        let kind = if warning { EventType::Warning } else { EventType::Normal };
        let reason = format!("{}{}", t.type_, if t.status == "True" { "" } else { "False" });
        let note = format!("{}={} ({}): {}", t.type_, t.status, t.reason, t.message);
        publish(ctx, hub, kind, &reason, note).await;
    }
    Ok(())
}

async fn publish(ctx: &Context, hub: &SocketIOHub, type_: EventType, reason: &str, note: String) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        // Event notes are capped at 1 kB by the API server.
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &hub.object_ref(&())).await {
        // Events are informative; failing to publish one must not fail the reconcile.
        tracing::warn!(error = %e, reason, "could not publish Event");
    }
}

#[cfg(test)]
mod tests {
    use super::{backoff, namespace_terminating, Error};
    use std::time::Duration;

    fn api_error(status: serde_json::Value) -> Error {
        let status: kube::core::Status = serde_json::from_value(status).unwrap();
        Error::Kube { action: "creating Secret x".into(), source: kube::Error::Api(Box::new(status)) }
    }

    #[test]
    fn namespace_termination_is_recognised_by_its_cause() {
        let terminating = api_error(serde_json::json!({
            "code": 403, "reason": "Forbidden", "message": "unable to create new content in namespace a",
            "details": { "causes": [{ "reason": "NamespaceTerminating", "message": "namespace a is being terminated" }] },
        }));
        assert!(namespace_terminating(&terminating));
        let rbac =
            api_error(serde_json::json!({ "code": 403, "reason": "Forbidden", "message": "cannot create" }));
        assert!(!namespace_terminating(&rbac), "a plain RBAC refusal must stay an error");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(9), Duration::from_secs(256));
        assert_eq!(backoff(10), Duration::from_secs(300));
        assert_eq!(backoff(200), Duration::from_secs(300));
    }
}

//! socketio-hub-operator: the Kubernetes operator for `SocketIOHub` objects.
//!
//! A `SocketIOHub` becomes a ConfigMap (the hub's `hub.toml`), an access-key Secret, a headless
//! and a client Service, a Deployment and a PodDisruptionBudget; its status says whether the
//! hub is `Ready`, `Progressing` or `Degraded`. The crate is split so that the decisions are
//! pure and tested directly — [`render`] (spec → objects) and [`status`] (observed Deployment →
//! conditions) — and only [`reconcile`] and [`leader`] talk to the API server.
//!
//! Invariants: `crd` is the only source of the CRD schema (`crdgen` writes `crds/` from it);
//! `render` and `status` do no I/O; every object the operator writes goes through server-side
//! apply with the one field manager [`reconcile::FIELD_MANAGER`], except the generated Secret,
//! which is only ever created.

pub mod crd;
pub mod leader;
pub mod metrics;
pub mod podcost;
pub mod reconcile;
pub mod render;
pub mod server;
pub mod status;

/// The CRD with the CEL rules removed, for API servers older than 1.25 (which reject or ignore
/// `x-kubernetes-validations`). The operator re-checks every rule while rendering, so such
/// servers still get a `Degraded` condition instead of a refusal at `kubectl apply`.
pub fn crd_without_cel(
) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    use kube::CustomResourceExt as _;
    let mut value = serde_json::to_value(crd::SocketIOHub::crd()).expect("CRD serializes");
    strip_key(&mut value, "x-kubernetes-validations");
    serde_json::from_value(value).expect("removing a key keeps a valid CRD")
}

fn strip_key(v: &mut serde_json::Value, key: &str) {
    match v {
        serde_json::Value::Object(map) => {
            map.remove(key);
            map.values_mut().for_each(|v| strip_key(v, key));
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| strip_key(v, key)),
        _ => {}
    }
}

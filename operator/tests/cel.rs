//! The CRD's validation, checked client-side with kube's CEL evaluator (the 1.20 API server of
//! the test suite cannot run CEL): every example passes; each rule refuses what it should.

mod common;

use kube::core::cel::Validator;
use kube::CustomResourceExt;
use serde_json::json;
use socketio_hub_operator::crd::SocketIOHub;

fn schema() -> serde_json::Value {
    let crd = SocketIOHub::crd();
    serde_json::to_value(crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap())
        .unwrap()
}

fn hub(spec: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "socketio.dev/v1alpha1",
        "kind": "SocketIOHub",
        "metadata": { "name": "x", "namespace": "apps" },
        "spec": spec,
    })
}

fn errors(spec: serde_json::Value) -> Vec<String> {
    match Validator::new().validate(&schema(), &hub(spec), None) {
        Ok(()) => vec![],
        Err(errs) => errs.iter().map(|e| format!("{}: {}", e.field_path, e.message)).collect(),
    }
}

#[test]
fn examples_pass_the_cel_rules() {
    for (stem, doc) in common::example_documents() {
        if doc["kind"] == "SocketIOHub" {
            if let Err(e) = Validator::new().validate(&schema(), &doc, None) {
                panic!("examples/{stem}.yaml: {e}");
            }
        }
    }
}

#[test]
fn empty_spec_is_valid() {
    assert_eq!(errors(json!({})), Vec::<String>::new());
}

#[test]
fn webhook_mode_needs_a_url() {
    let e = errors(json!({ "upstream": { "mode": "Webhook" } }));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("upstream.webhookUrl is required when upstream.mode is Webhook"), "{e:?}");
    assert!(
        errors(json!({ "upstream": { "mode": "Webhook", "webhookUrl": "https://a.example/h" } })).is_empty()
    );
}

#[test]
fn credentials_with_wildcard_origin_are_refused() {
    let e = errors(json!({ "cors": { "allowedOrigins": ["*"], "credentials": true } }));
    assert!(e.iter().any(|m| m.contains("browsers refuse credentials")), "{e:?}");
    assert!(errors(json!({ "cors": { "allowedOrigins": ["*"] } })).is_empty());
}

#[test]
fn origins_must_be_urls() {
    let e = errors(json!({ "cors": { "allowedOrigins": ["app.example.com"] } }));
    assert!(e.iter().any(|m| m.contains("must be \"*\" or start with http://")), "{e:?}");
}

#[test]
fn namespaces_must_start_with_a_slash() {
    let e = errors(json!({ "namespaces": ["chat"] }));
    assert!(e.iter().any(|m| m.contains("each namespace must be")), "{e:?}");
    assert!(errors(json!({ "namespaces": ["*", "/", "/org-*"] })).is_empty());
}

#[test]
fn an_enabled_admin_ui_needs_credentials() {
    let e = errors(json!({ "adminUi": { "enabled": true, "username": "admin" } }));
    assert!(e.iter().any(|m| m.contains("adminUi needs username and passwordHashSecret")), "{e:?}");
    let ok = json!({ "adminUi": { "enabled": true, "username": "admin",
        "passwordHashSecret": { "name": "chat-admin-ui", "key": "hash" } } });
    assert!(errors(ok).is_empty());
    assert!(errors(json!({ "adminUi": { "enabled": false } })).is_empty());
}

#[test]
fn transports_must_not_repeat() {
    let e = errors(json!({ "transports": ["polling", "polling"] }));
    assert!(e.iter().any(|m| m.contains("transports must not repeat")), "{e:?}");
}

#[test]
fn pdb_takes_one_bound_only() {
    let e = errors(json!({ "podDisruptionBudget": { "minAvailable": 1, "maxUnavailable": "10%" } }));
    assert!(e.iter().any(|m| m.contains("set at most one")), "{e:?}");
}

#[test]
fn stripped_crd_has_no_cel_but_keeps_the_structural_schema() {
    let stripped = serde_json::to_string(&socketio_hub_operator::crd_without_cel()).unwrap();
    assert!(!stripped.contains("x-kubernetes-validations"));
    let full = serde_json::to_string(&SocketIOHub::crd()).unwrap();
    assert!(full.contains("x-kubernetes-validations"));
    // Ranges and patterns stay: the old API server still refuses out-of-range numbers.
    assert!(stripped.contains("\"maximum\":1000.0") || stripped.contains("\"maximum\":1000"), "{stripped}");
}

#[test]
fn autoscaling_bounds_must_be_ordered() {
    let e = errors(json!({ "autoscaling": { "enabled": true, "minReplicas": 5, "maxReplicas": 3 } }));
    assert!(e.iter().any(|m| m.contains("minReplicas must not exceed")), "{e:?}");
    assert!(
        errors(json!({ "autoscaling": { "enabled": true, "minReplicas": 3, "maxReplicas": 3 } })).is_empty()
    );
}

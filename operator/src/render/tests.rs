use super::*;
use crate::crd::{SocketIOHub, SocketIOHubSpec};

fn hub(spec: serde_json::Value) -> SocketIOHub {
    let mut h: SocketIOHub = serde_json::from_value(json!({
        "apiVersion": "socketio.dev/v1alpha1",
        "kind": "SocketIOHub",
        "metadata": { "name": "chat", "namespace": "apps", "uid": "0b7c1c5e-0000-4000-8000-000000000001", "generation": 1 },
        "spec": spec,
    }))
    .expect("fixture");
    h.metadata.generation = Some(1);
    h
}

fn ctx() -> RenderContext {
    RenderContext { default_image: "example/hub:1".into() }
}

#[test]
fn empty_spec_renders_a_runnable_hub() {
    let r = render(&hub(json!({})), &ctx()).unwrap();
    let toml = &r.config_map.data.as_ref().unwrap()[CONFIG_FILE_NAME];
    // What the pods read parses and validates exactly as the hub binary will.
    let parsed = HubConfig::from_toml(toml).unwrap();
    parsed.validate().unwrap();
    assert_eq!(parsed, r.config);
    assert_eq!(parsed.cluster.seeds, vec!["chat-headless.apps.svc:7946".to_string()]);
    assert_eq!(parsed.cluster.cluster_id.as_deref(), Some("apps/chat"));
    assert_eq!(parsed.auth.access_keys_file.as_deref(), Some("/etc/socketio-hub/secret/accessKeys"));
    assert_eq!(parsed.listen.port(), 3000);
    assert_eq!(parsed.admin_listen.port(), 9090);
    assert_eq!(r.endpoint, "http://chat.apps.svc");
    assert_eq!(r.secret_name, "chat-access-keys");
    assert_eq!(r.deployment.spec.as_ref().unwrap().replicas, Some(2));
    // Pods authenticate each other with the cluster Secret, mounted where the config points.
    assert_eq!(r.cluster_secret_name, "chat-cluster-secret");
    assert_eq!(parsed.cluster.secret_file.as_deref(), Some("/etc/socketio-hub/cluster/clusterSecret"));
    assert_eq!(parsed.cluster.secret, None, "the secret itself never lands in the ConfigMap");
    let pod = r.deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let volume = pod.volumes.as_ref().unwrap().iter().find(|v| v.name == "cluster-secret").unwrap();
    assert_eq!(volume.secret.as_ref().unwrap().secret_name.as_deref(), Some("chat-cluster-secret"));
    let mount = pod.containers[0]
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "cluster-secret")
        .unwrap();
    assert_eq!(mount.mount_path, CLUSTER_SECRET_DIR);
}

#[test]
fn every_object_is_owned_by_the_hub() {
    let r = render(&hub(json!({})), &ctx()).unwrap();
    let metas = [
        &r.config_map.metadata,
        &r.headless_service.metadata,
        &r.service.metadata,
        &r.deployment.metadata,
        &r.pdb.as_ref().unwrap().metadata,
    ];
    for m in metas {
        let owners = m.owner_references.as_ref().unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].kind, "SocketIOHub");
        assert_eq!(owners[0].uid, "0b7c1c5e-0000-4000-8000-000000000001");
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(m.namespace.as_deref(), Some("apps"));
    }
}

fn hash_of(spec: serde_json::Value) -> String {
    render(&hub(spec), &ctx()).unwrap().config_hash
}

fn template_hash(r: &Rendered) -> String {
    let tpl = r.deployment.spec.as_ref().unwrap().template.metadata.as_ref().unwrap();
    tpl.annotations.as_ref().unwrap()[CONFIG_HASH_ANNOTATION].clone()
}

#[test]
fn config_changes_roll_pods_but_scaling_does_not() {
    let base = hash_of(json!({}));
    assert_eq!(base, hash_of(json!({ "replicas": 7 })), "scaling must not restart pods");
    assert_ne!(base, hash_of(json!({ "pingIntervalMs": 30000 })));
    assert_ne!(base, hash_of(json!({ "accessKeys": { "secretName": "other" } })));
    let r = render(&hub(json!({ "pingIntervalMs": 30000 })), &ctx()).unwrap();
    assert_eq!(template_hash(&r), r.config_hash);
}

#[test]
fn spec_fields_reach_the_config() {
    let r = render(
        &hub(json!({
            "path": "/rt/",
            "transports": ["websocket"],
            "pingIntervalMs": 1000, "pingTimeoutMs": 2000, "maxPayloadBytes": 4096,
            "cors": { "allowedOrigins": ["https://a.example"], "credentials": true },
            "connectionStateRecovery": { "enabled": true, "maxDisconnectionMs": 5000 },
            "upstream": { "mode": "Webhook", "webhookUrl": "https://app.example/hook", "webhookTimeoutMs": 900 },
            "clientAuth": "Required",
            "namespaces": ["/chat", "/org-*"],
            "shutdownGraceSeconds": 30,
            "log": { "level": "debug", "format": "Text" },
        })),
        &ctx(),
    )
    .unwrap();
    let c = &r.config;
    assert_eq!(c.path, "/rt/");
    assert_eq!(c.engine.transports, vec![config::Transport::Websocket]);
    assert_eq!(
        (c.engine.ping_interval_ms, c.engine.ping_timeout_ms, c.engine.max_payload),
        (1000, 2000, 4096)
    );
    assert_eq!(c.cors.allowed_origins, vec!["https://a.example".to_string()]);
    assert!(c.cors.credentials);
    assert!(c.socketio.recovery.enabled);
    assert_eq!(c.socketio.recovery.max_disconnection_ms, 5000);
    assert_eq!(c.upstream.mode, config::UpstreamMode::Webhook);
    assert_eq!(c.upstream.webhook_url.as_deref(), Some("https://app.example/hook"));
    assert_eq!(c.upstream.webhook_timeout_ms, 900);
    assert_eq!(c.auth.client_auth, config::ClientAuth::Required);
    assert_eq!(c.socketio.namespaces, vec!["/chat".to_string(), "/org-*".to_string()]);
    assert_eq!(c.shutdown_grace_ms, 30_000);
    assert_eq!(c.log.format, config::LogFormat::Text);
    // Grace = preStop sleep + drain + margin, so the drain is never cut short.
    let pod = r.deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.termination_grace_period_seconds, Some(PRESTOP_SLEEP_SECONDS + 30 + 5));
}

#[test]
fn invalid_specs_are_refused_with_the_field_named() {
    let err = |spec| match render(&hub(spec), &ctx()) {
        Err(RenderError::InvalidSpec(p)) => p.join("; "),
        other => panic!("expected InvalidSpec, got {other:?}"),
    };
    assert_eq!(
        err(json!({ "upstream": { "mode": "Webhook" } })),
        "spec.upstream.webhookUrl is required when spec.upstream.mode is Webhook"
    );
    assert!(err(json!({ "cors": { "allowedOrigins": ["*"], "credentials": true } }))
        .starts_with("spec.cors.credentials: browsers refuse credentials"));
    assert!(
        err(json!({ "namespaces": ["chat"] })).starts_with("spec.namespaces: \"chat\" must start with '/'")
    );
    assert!(err(json!({ "service": { "nodePort": 30080 } })).contains("spec.service.nodePort is set"));
    assert!(err(json!({ "transports": ["polling", "polling"] })).contains("lists Polling twice"));
    assert!(err(json!({ "podDisruptionBudget": { "minAvailable": 1, "maxUnavailable": 1 } }))
        .contains("at most one of minAvailable and maxUnavailable"));
    assert!(err(json!({ "pingIntervalMs": -5 })).contains("spec.pingIntervalMs is -5"));
    assert_eq!(
        err(json!({ "autoscaling": { "enabled": true, "minReplicas": 4, "maxReplicas": 2 } })),
        "spec.autoscaling.minReplicas (4) exceeds spec.autoscaling.maxReplicas (2)"
    );
}

#[test]
fn hpa_follows_the_spec_and_scales_the_hub_on_connections() {
    assert!(render(&hub(json!({})), &ctx()).unwrap().hpa.is_none(), "no HPA unless autoscaling is enabled");
    let r = render(
        &hub(json!({ "autoscaling": { "enabled": true, "maxReplicas": 8, "targetConnectionsPerPod": 500,
                                      "scaleDownPodsPerMinute": 2 } })),
        &ctx(),
    )
    .unwrap();
    let hpa = serde_json::to_value(r.hpa.expect("an HPA")).unwrap();
    assert_eq!(hpa["metadata"]["ownerReferences"][0]["kind"], "SocketIOHub");
    let spec = &hpa["spec"];
    assert_eq!(spec["scaleTargetRef"]["kind"], "SocketIOHub", "the HPA scales the hub, not the Deployment");
    assert_eq!((spec["minReplicas"].clone(), spec["maxReplicas"].clone()), (json!(2), json!(8)));
    assert_eq!(spec["metrics"][0]["type"], "Pods");
    assert_eq!(spec["metrics"][0]["pods"]["metric"]["name"], CONNECTIONS_METRIC);
    assert_eq!(
        spec["metrics"][0]["pods"]["target"],
        json!({ "type": "AverageValue", "averageValue": "500" })
    );
    assert_eq!(spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"], 300);
    assert_eq!(
        spec["behavior"]["scaleDown"]["policies"][0],
        json!({ "type": "Pods", "value": 2, "periodSeconds": 60 })
    );
    // The scale subresource's selector selects exactly the Deployment's pods.
    let sts_selector = r.deployment.spec.unwrap().selector.match_labels.unwrap();
    let from_string: std::collections::BTreeMap<String, String> = r
        .selector
        .split(',')
        .map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap())
        .collect();
    assert_eq!(from_string, sts_selector);
}

#[test]
fn long_names_are_refused_before_the_api_server_does() {
    let mut h = hub(json!({}));
    h.metadata.name = Some("a".repeat(MAX_NAME_LEN + 1));
    match render(&h, &ctx()) {
        Err(RenderError::InvalidSpec(p)) => assert!(p[0].contains("at most 54"), "{p:?}"),
        other => panic!("{other:?}"),
    }
    h.metadata.name = Some("a".repeat(MAX_NAME_LEN));
    assert!(render(&h, &ctx()).is_ok());
}

#[test]
fn missing_uid_is_an_error_not_an_orphan() {
    let mut h = hub(json!({}));
    h.metadata.uid = None;
    assert_eq!(render(&h, &ctx()).unwrap_err(), RenderError::MissingMetadata("uid"));
}

#[test]
fn pdb_follows_the_spec() {
    let pdb = |spec| render(&hub(spec), &ctx()).unwrap().pdb.map(|p| serde_json::to_value(p.spec).unwrap());
    assert_eq!(pdb(json!({})).unwrap()["maxUnavailable"], json!(1));
    assert_eq!(
        pdb(json!({ "podDisruptionBudget": { "minAvailable": "50%" } })).unwrap()["minAvailable"],
        json!("50%")
    );
    assert!(pdb(json!({ "podDisruptionBudget": { "enabled": false } })).is_none());
}

#[test]
fn secret_holds_both_keys_and_the_connection_string() {
    let keys = AccessKeyPair { primary: "p".repeat(20), secondary: "s".repeat(20) };
    let s = render_secret(&hub(json!({ "service": { "port": 3000 } })), &keys).unwrap();
    let d = s.data.as_ref().unwrap();
    let text = |k: &str| String::from_utf8(d[k].0.clone()).unwrap();
    assert_eq!(text("accessKeys"), format!("{}\n{}\n", keys.primary, keys.secondary));
    assert_eq!(text("primaryKey"), keys.primary);
    assert_eq!(text("secondaryKey"), keys.secondary);
    assert_eq!(
        text("connectionString"),
        format!("Endpoint=http://chat.apps.svc:3000;AccessKey={};", keys.primary)
    );
    assert_eq!(s.metadata.labels.as_ref().unwrap()[GENERATED_LABEL], "true");
    check_secret(&s).unwrap();
}

#[test]
fn generated_keys_are_distinct_and_long() {
    let a = AccessKeyPair::generate();
    let b = AccessKeyPair::generate();
    assert_ne!(a.primary, a.secondary);
    assert_ne!(a.primary, b.primary);
    assert_eq!(a.primary.len(), 43);
    assert!(!a.primary.contains(';'));
    assert_eq!(format!("{a:?}"), "AccessKeyPair(<redacted>)");
}

#[test]
fn unusable_secrets_are_explained() {
    let secret = |data: Option<&str>| Secret {
        metadata: ObjectMeta { name: Some("keys".into()), ..ObjectMeta::default() },
        data: data.map(|d| BTreeMap::from([("accessKeys".to_string(), ByteString(d.as_bytes().to_vec()))])),
        ..Secret::default()
    };
    let msg = |d| check_secret(&secret(d)).unwrap_err().to_string();
    assert!(msg(None).contains("has no \"accessKeys\" key"));
    assert!(msg(Some("\n\n")).contains("holds 0 keys"));
    assert!(msg(Some("short\n")).contains("at least 16 characters"));
    assert!(msg(Some("aaaaaaaaaaaaaaaaaaaa\nbbbbbbbbbbbbbbbbbbbbbb\ncccccccccccccccccccc\n"))
        .contains("holds 3 keys"));
    check_secret(&secret(Some("aaaaaaaaaaaaaaaaaaaa\n"))).unwrap();
}

#[test]
fn the_cluster_secret_is_generated_long_owned_and_checked() {
    let a = ClusterSecret::generate();
    assert_ne!(a, ClusterSecret::generate());
    assert!(a.0.len() >= config::MIN_CLUSTER_SECRET_LEN);
    assert_eq!(format!("{a:?}"), "ClusterSecret(<redacted>)");
    let s = render_cluster_secret(&hub(json!({})), &a).unwrap();
    assert_eq!(s.metadata.name.as_deref(), Some("chat-cluster-secret"));
    assert_eq!(s.metadata.labels.as_ref().unwrap()[GENERATED_LABEL], "true");
    assert_eq!(s.metadata.owner_references.as_ref().unwrap()[0].controller, Some(true));
    assert_eq!(s.data.as_ref().unwrap()["clusterSecret"].0, a.0.as_bytes());
    check_cluster_secret(&s).unwrap();
    let secret = |data: Option<&str>| Secret {
        metadata: ObjectMeta { name: Some("chat-cluster-secret".into()), ..ObjectMeta::default() },
        data: data
            .map(|d| BTreeMap::from([("clusterSecret".to_string(), ByteString(d.as_bytes().to_vec()))])),
        ..Secret::default()
    };
    let msg = |d| check_cluster_secret(&secret(d)).unwrap_err().to_string();
    assert!(msg(None).contains("has no \"clusterSecret\" key"), "{}", msg(None));
    assert!(msg(Some("short\n")).contains("holds 5 bytes"), "{}", msg(Some("short\n")));
}

#[test]
fn defaulted_spec_matches_the_empty_spec() {
    assert_eq!(SocketIOHubSpec::defaulted(), hub(json!({})).spec);
}

#[test]
fn the_admin_ui_reaches_the_config_with_its_hash_secret_mounted() {
    let spec = json!({ "adminUi": {
        "enabled": true, "username": "admin", "mode": "Development", "serveUi": true,
        "passwordHashSecret": { "name": "chat-admin-ui", "key": "hash" },
    } });
    let r = render(&hub(spec), &ctx()).unwrap();
    let a = &r.config.admin_ui;
    assert!(a.enabled && a.serve_ui);
    assert_eq!(a.username.as_deref(), Some("admin"));
    assert_eq!(a.mode, config::AdminUiMode::Development);
    assert_eq!(a.password_hash_file.as_deref(), Some("/etc/socketio-hub/admin-ui/password-hash"));
    let pod = r.deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let vol = pod.volumes.as_ref().unwrap().iter().find(|v| v.name == "admin-ui").expect("admin-ui volume");
    let secret = vol.secret.as_ref().unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("chat-admin-ui"));
    assert_eq!(secret.items.as_ref().unwrap()[0].key, "hash");
    let mounts = pod.containers[0].volume_mounts.as_ref().unwrap();
    assert!(mounts.iter().any(|m| m.name == "admin-ui" && m.mount_path == ADMIN_UI_DIR));
    // Off (or absent): no volume, and the config section keeps its defaults.
    let off = render(&hub(json!({ "adminUi": { "enabled": false } })), &ctx()).unwrap();
    assert!(!off.config.admin_ui.enabled);
    let pod = off.deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert!(!pod.volumes.as_ref().unwrap().iter().any(|v| v.name == "admin-ui"));
    // Enabled without credentials is refused with the spec field named.
    let err = render(&hub(json!({ "adminUi": { "enabled": true } })), &ctx()).unwrap_err().to_string();
    assert!(err.contains("spec.adminUi.username"), "{err}");
}

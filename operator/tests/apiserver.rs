//! Reconcile scenarios against a real Kubernetes API server, with the real operator binary
//! running under the Helm chart's service account (so the chart's RBAC is what is tested).
//!
//! `scripts/operator-test` starts etcd, kube-apiserver and kube-controller-manager (1.20, no
//! kubelet), installs the CRD and the chart, and sets:
//! - `SIOH_TEST_KUBECONFIG`: an admin kubeconfig (plays the person using kubectl),
//! - `SIOH_OPERATOR_KUBECONFIG`: a kubeconfig holding the chart's service-account token,
//! - `SIOH_OPERATOR_NAMESPACE`, `SIOH_OPERATOR_SA`: where the chart is installed and its SA.
//!
//! Without them every test here prints a SKIP line and returns.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use serde_json::json;
use socketio_hub_config::{HubConfig, CONFIG_FILE_NAME};
use socketio_hub_operator::crd::SocketIOHub;
use socketio_hub_operator::reconcile::discover_pdb_api;
use socketio_hub_operator::render::CONFIG_HASH_ANNOTATION;
use socketio_hub_operator::status::{self, DEGRADED, PROGRESSING, READY};

struct Env {
    admin_kubeconfig: PathBuf,
    operator_kubeconfig: PathBuf,
    operator_namespace: String,
    operator_sa: String,
}

fn env() -> Option<Env> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        var("SIOH_TEST_KUBECONFIG"),
        var("SIOH_OPERATOR_KUBECONFIG"),
        var("SIOH_OPERATOR_NAMESPACE"),
        var("SIOH_OPERATOR_SA"),
    ) {
        (Some(a), Some(o), Some(ns), Some(sa)) => Some(Env {
            admin_kubeconfig: a.into(),
            operator_kubeconfig: o.into(),
            operator_namespace: ns,
            operator_sa: sa,
        }),
        _ => {
            eprintln!(
                "SKIP: no test API server (SIOH_TEST_KUBECONFIG etc. unset); run scripts/operator-test, which \
                 starts one and runs these tests against it"
            );
            None
        }
    }
}

async fn client(kubeconfig: &PathBuf) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("readable kubeconfig");
    let cfg =
        Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("usable kubeconfig");
    Client::try_from(cfg).expect("client")
}

/// The operator binary, killed on drop (so a failing test leaves nothing behind).
struct Operator {
    child: Child,
    metrics: String,
    log: PathBuf,
}

impl Operator {
    fn start(env: &Env, identity: &str, extra_args: &[&str]) -> Operator {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir =
            std::env::var("SIOH_TEST_ARTIFACTS").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!("operator-{identity}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_socketio-hub-operator"))
            .env("KUBECONFIG", &env.operator_kubeconfig)
            .env("POD_NAMESPACE", &env.operator_namespace)
            .env("POD_NAME", identity)
            .env("RUST_LOG", "info,kube=warn")
            .args(["--metrics-listen", &format!("127.0.0.1:{port}"), "--log-format", "text"])
            .args(["--default-image", "example.test/hub:1"])
            .args(extra_args)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("operator binary runs");
        Operator { child, metrics: format!("http://127.0.0.1:{port}/metrics"), log }
    }

    async fn metric(&self, line_prefix: &str) -> Option<f64> {
        let text = reqwest::get(&self.metrics).await.ok()?.text().await.ok()?;
        text.lines().find(|l| l.starts_with(line_prefix))?.rsplit(' ').next()?.parse().ok()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "operator did not stop within 20s of SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Poll `f` every 100 ms until it yields `Some`, or fail after `secs` naming `what`.
async fn until<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs}s waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn namespace(c: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(c.clone());
    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("creating namespace {name}: {e}"),
    }
}

async fn apply_hub(api: &Api<SocketIOHub>, name: &str, spec: serde_json::Value) -> SocketIOHub {
    let obj = json!({
        "apiVersion": "socketio.dev/v1alpha1",
        "kind": "SocketIOHub",
        "metadata": { "name": name },
        "spec": spec,
    });
    api.patch(name, &PatchParams::apply("e2e-person").force(), &Patch::Apply(&obj))
        .await
        .unwrap_or_else(|e| panic!("applying hub {name}: {e}"))
}

fn condition(hub: &SocketIOHub, type_: &str) -> Option<(String, String, String, Option<i64>)> {
    let c = status::find(&hub.status.as_ref()?.conditions, type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone(), c.observed_generation))
}

/// Wait until the hub's status describes its current generation and `type_` has `want` status.
async fn wait_condition(
    api: &Api<SocketIOHub>,
    name: &str,
    type_: &str,
    want: &str,
    secs: u64,
) -> SocketIOHub {
    until(&format!("{name}: {type_}={want} for the current generation"), secs, || async {
        let hub = api.get(name).await.ok()?;
        let generation = hub.metadata.generation?;
        let (status, _, _, observed) = condition(&hub, type_)?;
        (status == want && observed == Some(generation)).then_some(hub)
    })
    .await
}

/// Pretend the Deployment and ReplicaSet controllers and kubelets did their job: every pod
/// ready on the current template (there is no kubelet in the test control plane).
async fn simulate_ready_pods(api: &Api<Deployment>, name: &str) {
    let d = api.get(name).await.unwrap();
    let replicas = d.spec.as_ref().unwrap().replicas.unwrap_or(1);
    let generation = d.metadata.generation.unwrap();
    let patch = json!({ "status": {
        "observedGeneration": generation, "replicas": replicas, "readyReplicas": replicas,
        "updatedReplicas": replicas, "availableReplicas": replicas,
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

fn kubectl_wait_ready(env: &Env, ns: &str, name: &str, timeout: &str) -> bool {
    let out = Command::new("kubectl")
        .args(["--kubeconfig", env.admin_kubeconfig.to_str().unwrap(), "-n", ns])
        .args([
            "wait",
            "--for=condition=Ready",
            &format!("socketiohub/{name}"),
            &format!("--timeout={timeout}"),
        ])
        .output()
        .expect("kubectl runs");
    out.status.success()
}

async fn events_with_reason(c: &Client, ns: &str, hub: &str, reason: &str) -> usize {
    let api: Api<Event> = Api::namespaced(c.clone(), ns);
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(hub))
        .filter(|e| e.reason.as_deref() == Some(reason))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_scenarios() {
    let Some(env) = env() else { return };
    let admin = client(&env.admin_kubeconfig).await;
    let mut op = Operator::start(&env, "op-test-1", &[]);
    let result = tokio::time::timeout(Duration::from_secs(300), scenarios(&env, &admin, &op)).await;
    if result.is_err() {
        panic!("scenarios took over 300s; operator log:\n{}", op.log_tail());
    }
    let exit = op.terminate();
    assert!(exit.success(), "operator exit after SIGTERM: {exit}; log:\n{}", op.log_tail());
}

async fn scenarios(env: &Env, admin: &Client, op: &Operator) {
    // A fresh namespace per run: a failed earlier run may have left objects behind.
    let ns = &format!("e2e-scenarios-{}", std::process::id());
    namespace(admin, ns).await;
    let hubs: Api<SocketIOHub> = Api::namespaced(admin.clone(), ns);
    let stss: Api<Deployment> = Api::namespaced(admin.clone(), ns);
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), ns);
    let svcs: Api<Service> = Api::namespaced(admin.clone(), ns);
    let pdbs: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), ns, &discover_pdb_api(admin).await.unwrap());

    // --- create: every object appears, owned by the hub; status says Progressing.
    eprintln!("scenario: create");
    let t0 = Instant::now();
    let created = apply_hub(&hubs, "chat", json!({ "replicas": 3 })).await;
    let uid = created.uid().unwrap();
    let hub = wait_condition(&hubs, "chat", PROGRESSING, "True", 30).await;
    eprintln!("  status written {:?} after create", t0.elapsed());
    let (_, reason, _, _) = condition(&hub, READY).unwrap();
    assert_eq!(reason, "RollingOut");
    let st = hub.status.clone().unwrap();
    assert_eq!(st.endpoint.clone(), Some(format!("http://chat.{ns}.svc")));
    assert_eq!(st.connection_secret.as_deref(), Some("chat-access-keys"));
    let cm = cms.get("chat-config").await.unwrap();
    let toml = &cm.data.as_ref().unwrap()[CONFIG_FILE_NAME];
    let cfg = HubConfig::from_toml(toml).expect("rendered hub.toml parses");
    cfg.validate().expect("rendered hub.toml validates");
    assert_eq!(cfg.cluster.seeds, vec![format!("chat-headless.{ns}.svc:7946")]);
    let secret = secrets.get("chat-access-keys").await.unwrap();
    let data = secret.data.clone().unwrap();
    for k in ["accessKeys", "primaryKey", "secondaryKey", "connectionString"] {
        assert!(data.contains_key(k), "generated Secret lacks {k}");
    }
    let primary = String::from_utf8(data["primaryKey"].0.clone()).unwrap();
    assert_eq!(
        String::from_utf8(data["connectionString"].0.clone()).unwrap(),
        format!("Endpoint=http://chat.{ns}.svc;AccessKey={primary};")
    );
    let headless = svcs.get("chat-headless").await.unwrap();
    assert_eq!(headless.spec.as_ref().unwrap().cluster_ip.as_deref(), Some("None"));
    let sts = stss.get("chat").await.unwrap();
    assert_eq!(sts.spec.as_ref().unwrap().replicas, Some(3));
    let pdb = pdbs.get("chat").await.unwrap();
    let owned = |refs: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference]| {
        refs.iter().any(|o| o.uid == uid && o.controller == Some(true))
    };
    assert!(owned(cm.owner_references()) && owned(sts.owner_references()) && owned(pdb.owner_references()));
    assert!(owned(secret.owner_references()) && owned(headless.owner_references()));
    until("SecretGenerated event", 10, || async {
        (events_with_reason(admin, ns, "chat", "SecretGenerated").await == 1).then_some(())
    })
    .await;
    // The cluster Secret: generated once, owned, long enough, and what the config points at.
    let cluster_secret = secrets.get("chat-cluster-secret").await.unwrap();
    assert!(owned(cluster_secret.owner_references()));
    let value = cluster_secret.data.clone().unwrap()["clusterSecret"].0.clone();
    assert!(value.len() >= socketio_hub_config::MIN_CLUSTER_SECRET_LEN);
    assert_eq!(cfg.cluster.secret_file.as_deref(), Some("/etc/socketio-hub/cluster/clusterSecret"));
    until("ClusterSecretGenerated event", 10, || async {
        (events_with_reason(admin, ns, "chat", "ClusterSecretGenerated").await == 1).then_some(())
    })
    .await;
    assert!(!kubectl_wait_ready(env, ns, "chat", "1s"), "kubectl wait said Ready before any pod was ready");

    // --- pods become ready → Ready=True, and kubectl wait agrees.
    eprintln!("scenario: pods ready");
    let t1 = Instant::now();
    simulate_ready_pods(&stss, "chat").await;
    let hub = wait_condition(&hubs, "chat", READY, "True", 30).await;
    eprintln!("  Ready=True {:?} after the Deployment reported ready pods", t1.elapsed());
    assert_eq!(hub.status.as_ref().unwrap().ready_replicas, Some(3));
    assert_eq!(hub.status.as_ref().unwrap().replicas_summary.as_deref(), Some("3/3"));
    assert!(kubectl_wait_ready(env, ns, "chat", "10s"), "kubectl wait did not see Ready=True");
    until("hubs{Ready} metric", 10, || async {
        (op.metric("socketio_hub_operator_hubs{condition=\"Ready\"}").await? >= 1.0).then_some(())
    })
    .await;

    // --- update spec → config hash changes → the Deployment's template rolls; Ready is truthful.
    eprintln!("scenario: update spec rolls pods");
    let old_hash = hub.status.as_ref().unwrap().config_hash.clone().unwrap();
    let updated = apply_hub(&hubs, "chat", json!({ "replicas": 3, "pingIntervalMs": 30000 })).await;
    assert_eq!(updated.metadata.generation, Some(2));
    // Before the operator catches up, the old Ready=True carries generation 1: kubectl wait
    // must not accept it (it compares observedGeneration with generation).
    let hub = wait_condition(&hubs, "chat", READY, "False", 30).await;
    let new_hash = hub.status.as_ref().unwrap().config_hash.clone().unwrap();
    let kept = secrets.get("chat-cluster-secret").await.unwrap();
    assert_eq!(kept.data.unwrap()["clusterSecret"].0, value, "the cluster secret was regenerated");
    assert_ne!(old_hash, new_hash, "a config change must change the hash");
    let sts = stss.get("chat").await.unwrap();
    let tpl = sts.spec.unwrap().template.metadata.unwrap().annotations.unwrap();
    assert_eq!(tpl[CONFIG_HASH_ANNOTATION], new_hash);
    let toml = cms.get("chat-config").await.unwrap().data.unwrap()[CONFIG_FILE_NAME].clone();
    assert_eq!(HubConfig::from_toml(&toml).unwrap().engine.ping_interval_ms, 30_000);
    assert_eq!(condition(&hub, READY).unwrap().1, "RollingOut");
    assert!(!kubectl_wait_ready(env, ns, "chat", "2s"), "kubectl wait trusted a Ready from the old spec");
    simulate_ready_pods(&stss, "chat").await;
    wait_condition(&hubs, "chat", READY, "True", 30).await;
    assert!(kubectl_wait_ready(env, ns, "chat", "10s"));
    // Scaling changes no configuration: the pods must not roll.
    apply_hub(&hubs, "chat", json!({ "replicas": 5, "pingIntervalMs": 30000 })).await;
    let sts = until("Deployment scaled to 5", 30, || async {
        let s = stss.get("chat").await.ok()?;
        (s.spec.as_ref()?.replicas == Some(5)).then_some(s)
    })
    .await;
    assert_eq!(
        sts.spec.unwrap().template.metadata.unwrap().annotations.unwrap()[CONFIG_HASH_ANNOTATION],
        new_hash
    );
    simulate_ready_pods(&stss, "chat").await;
    wait_condition(&hubs, "chat", READY, "True", 30).await;

    // --- drift: someone edits the Deployment and deletes the ConfigMap; both come back.
    eprintln!("scenario: drift repair");
    let drift = json!({ "spec": { "replicas": 1, "template": { "metadata": { "annotations": {
        CONFIG_HASH_ANNOTATION: "tampered" } } } } });
    stss.patch("chat", &PatchParams::default(), &Patch::Merge(&drift)).await.unwrap();
    cms.delete("chat-config", &DeleteParams::default()).await.unwrap();
    let t2 = Instant::now();
    until("Deployment drift reverted", 30, || async {
        let s = stss.get("chat").await.ok()?;
        let spec = s.spec?;
        let hash = spec.template.metadata?.annotations?.get(CONFIG_HASH_ANNOTATION)?.clone();
        (spec.replicas == Some(5) && hash == new_hash).then_some(())
    })
    .await;
    eprintln!("  drift reverted after {:?}", t2.elapsed());
    until("ConfigMap recreated", 30, || async { cms.get_opt("chat-config").await.ok()?.map(|_| ()) }).await;

    // --- invalid spec → Degraded with an actionable message, and no hot loop.
    eprintln!("scenario: invalid spec");
    apply_hub(&hubs, "chat", json!({ "replicas": 5, "upstream": { "mode": "Webhook" } })).await;
    let hub = wait_condition(&hubs, "chat", DEGRADED, "True", 30).await;
    let (_, reason, message, _) = condition(&hub, DEGRADED).unwrap();
    assert_eq!(reason, "InvalidSpec");
    assert_eq!(message, "spec.upstream.webhookUrl is required when spec.upstream.mode is Webhook");
    assert_eq!(condition(&hub, READY).unwrap().0, "False");
    let rv = hub.resource_version();
    // The counter moves just after the status write: let the reconcile finish first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let invalid_before =
        op.metric("socketio_hub_operator_reconciles_total{result=\"invalid\"}").await.unwrap();
    assert!(invalid_before >= 1.0, "the invalid reconcile was not counted");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let invalid_after =
        op.metric("socketio_hub_operator_reconciles_total{result=\"invalid\"}").await.unwrap();
    assert!(
        invalid_after - invalid_before <= 1.0,
        "invalid spec reconciled {} times in 4s",
        invalid_after - invalid_before
    );
    assert_eq!(hubs.get("chat").await.unwrap().resource_version(), rv, "status kept changing: hot loop");
    assert_eq!(events_with_reason(admin, ns, "chat", "Degraded").await, 1, "exactly one Degraded event");
    // The running pods were left alone: the last good configuration stays applied.
    let toml = cms.get("chat-config").await.unwrap().data.unwrap()[CONFIG_FILE_NAME].clone();
    assert_eq!(HubConfig::from_toml(&toml).unwrap().upstream.mode, socketio_hub_config::UpstreamMode::Link);
    apply_hub(
        &hubs,
        "chat",
        json!({ "replicas": 5, "upstream": { "mode": "Webhook", "webhookUrl": "http://app.e2e.svc/hook" } }),
    )
    .await;
    wait_condition(&hubs, "chat", DEGRADED, "False", 30).await;

    // --- the schema refuses nonsense at apply time (types, ranges, enums work on 1.20 too).
    eprintln!("scenario: schema refuses nonsense");
    for (spec, field) in [
        (json!({ "replicas": 0 }), "spec.replicas"),
        (json!({ "pingIntervalMs": 5 }), "spec.pingIntervalMs"),
        (json!({ "transports": ["carrier-pigeon"] }), "spec.transports"),
        (json!({ "service": { "type": "Magic" } }), "spec.service.type"),
        (json!({ "path": "no-slash" }), "spec.path"),
    ] {
        let obj = json!({ "apiVersion": "socketio.dev/v1alpha1", "kind": "SocketIOHub",
                          "metadata": { "name": "nonsense" }, "spec": spec });
        match hubs.patch("nonsense", &PatchParams::apply("e2e-person"), &Patch::Apply(&obj)).await {
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 422, "{spec}: {s:?}");
                assert!(s.message.contains(field), "{spec}: message {:?} does not name {field}", s.message);
            }
            other => panic!("{spec} was accepted: {other:?}"),
        }
    }

    // --- an existing Secret is used as it is and never overwritten; a broken one is explained.
    eprintln!("scenario: existing Secret");
    let own: Secret = serde_json::from_value(json!({
        "metadata": { "name": "games-keys" },
        "stringData": { "accessKeys": "my-own-primary-key-1234567890\nmy-own-secondary-key-1234567890\n" },
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &own).await.unwrap();
    let before = secrets.get("games-keys").await.unwrap();
    apply_hub(&hubs, "games", json!({ "replicas": 1, "accessKeys": { "secretName": "games-keys" } })).await;
    wait_condition(&hubs, "games", PROGRESSING, "True", 30).await;
    let after = secrets.get("games-keys").await.unwrap();
    assert_eq!(before.data, after.data, "the operator changed a Secret it did not create");
    assert_eq!(before.resource_version(), after.resource_version());
    let broken: Secret = serde_json::from_value(
        json!({ "metadata": { "name": "broken-keys" }, "stringData": { "key": "x" } }),
    )
    .unwrap();
    secrets.create(&PostParams::default(), &broken).await.unwrap();
    apply_hub(&hubs, "broken", json!({ "replicas": 1, "accessKeys": { "secretName": "broken-keys" } })).await;
    let hub = wait_condition(&hubs, "broken", DEGRADED, "True", 30).await;
    let msg = condition(&hub, DEGRADED).unwrap().2;
    assert!(msg.contains("Secret \"broken-keys\" has no \"accessKeys\" key"), "{msg}");
    assert!(secrets.get("broken-keys").await.unwrap().data.unwrap().contains_key("key"));

    // --- delete → the garbage collector removes every owned object; foreign Secrets stay.
    eprintln!("scenario: delete garbage-collects");
    for name in ["chat", "games", "broken"] {
        hubs.delete(name, &DeleteParams::default()).await.unwrap();
    }
    let t3 = Instant::now();
    // The garbage collector rediscovers resource types every 30 s, so a fresh CRD can take that long.
    until("owned objects garbage-collected", 90, || async {
        let gone = cms.get_opt("chat-config").await.ok()?.is_none()
            && stss.get_opt("chat").await.ok()?.is_none()
            && svcs.get_opt("chat").await.ok()?.is_none()
            && svcs.get_opt("chat-headless").await.ok()?.is_none()
            && pdbs.get_opt("chat").await.ok()?.is_none()
            && secrets.get_opt("chat-access-keys").await.ok()?.is_none()
            && secrets.get_opt("chat-cluster-secret").await.ok()?.is_none()
            && stss.get_opt("games").await.ok()?.is_none();
        gone.then_some(())
    })
    .await;
    eprintln!("  garbage-collected {:?} after delete", t3.elapsed());
    assert!(secrets.get_opt("games-keys").await.unwrap().is_some(), "a person's Secret was deleted");
    assert!(secrets.get_opt("broken-keys").await.unwrap().is_some(), "a person's Secret was deleted");
    until("hubs gauge forgets deleted hubs", 30, || async {
        (op.metric("socketio_hub_operator_hubs{condition=\"Ready\"}").await? == 0.0).then_some(())
    })
    .await;
    let _ = Api::<Namespace>::all(admin.clone()).delete(ns, &DeleteParams::default()).await;
}

async fn can(admin: &Client, user: &str, verb: &str, group: &str, resource: &str, ns: Option<&str>) -> bool {
    let (resource, sub) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_string())),
        None => (resource, None),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_string()),
            groups: Some(vec!["system:serviceaccounts".into(), "system:authenticated".into()]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource: sub,
                namespace: ns.map(String::from),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(admin.clone());
    let res = api.create(&PostParams::default(), &review).await.expect("SubjectAccessReview");
    res.status.map(|s| s.allowed).unwrap_or(false)
}

#[tokio::test]
async fn chart_rbac_is_sufficient_and_not_broader() {
    let Some(env) = env() else { return };
    let admin = client(&env.admin_kubeconfig).await;
    let sa = &env.operator_sa;
    let own_ns = env.operator_namespace.as_str();
    // Sufficient: what reconcile, the watches, Events and leader election use.
    let needed: &[(&str, &str, &str, Option<&str>)] = &[
        ("list", "socketio.dev", "socketiohubs", None),
        ("watch", "socketio.dev", "socketiohubs", None),
        ("patch", "socketio.dev", "socketiohubs/status", Some("apps")),
        ("patch", "", "configmaps", Some("apps")),
        ("create", "", "configmaps", Some("apps")),
        ("watch", "", "services", None),
        ("patch", "", "services", Some("apps")),
        ("get", "", "secrets", Some("apps")),
        ("create", "", "secrets", Some("apps")),
        ("patch", "apps", "deployments", Some("apps")),
        ("watch", "apps", "deployments", None),
        // The StatefulSet an older operator ran pods in: read and deleted once replaced.
        ("get", "apps", "statefulsets", Some("apps")),
        ("delete", "apps", "statefulsets", Some("apps")),
        ("patch", "policy", "poddisruptionbudgets", Some("apps")),
        ("delete", "policy", "poddisruptionbudgets", Some("apps")),
        ("patch", "autoscaling", "horizontalpodautoscalers", Some("apps")),
        ("delete", "autoscaling", "horizontalpodautoscalers", Some("apps")),
        ("list", "", "pods", Some("apps")),
        ("patch", "", "pods", Some("apps")),
        ("create", "events.k8s.io", "events", Some("apps")),
        ("update", "coordination.k8s.io", "leases", Some(own_ns)),
    ];
    for (verb, group, resource, ns) in needed {
        assert!(
            can(&admin, sa, verb, group, resource, *ns).await,
            "chart RBAC lacks {verb} {group}/{resource}"
        );
    }
    // Not broader: nothing the operator never does.
    let forbidden: &[(&str, &str, &str, Option<&str>)] = &[
        ("list", "", "secrets", None),
        ("watch", "", "secrets", Some("apps")),
        ("update", "", "secrets", Some("apps")),
        ("patch", "", "secrets", Some("apps")),
        ("delete", "", "secrets", Some("apps")),
        ("create", "apps", "statefulsets", Some("apps")),
        ("patch", "apps", "statefulsets", Some("apps")),
        ("delete", "apps", "deployments", Some("apps")),
        ("delete", "", "configmaps", Some("apps")),
        ("delete", "", "services", Some("apps")),
        ("create", "", "pods", Some("apps")),
        ("update", "", "pods", Some("apps")),
        ("delete", "", "pods", Some("apps")),
        ("create", "", "pods/eviction", Some("apps")),
        ("update", "autoscaling", "horizontalpodautoscalers", Some("apps")),
        ("update", "socketio.dev", "socketiohubs", Some("apps")),
        ("patch", "socketio.dev", "socketiohubs", Some("apps")),
        ("delete", "socketio.dev", "socketiohubs", Some("apps")),
        ("create", "socketio.dev", "socketiohubs", Some("apps")),
        ("update", "coordination.k8s.io", "leases", Some("apps")),
        ("create", "rbac.authorization.k8s.io", "clusterroles", None),
        ("list", "", "nodes", None),
        ("create", "apiextensions.k8s.io", "customresourcedefinitions", None),
        ("delete", "events.k8s.io", "events", Some("apps")),
    ];
    for (verb, group, resource, ns) in forbidden {
        assert!(
            !can(&admin, sa, verb, group, resource, *ns).await,
            "chart RBAC grants {verb} {group}/{resource} in {ns:?}, which the operator never needs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_election_hands_over_on_shutdown() {
    let Some(env) = env() else { return };
    let admin = client(&env.admin_kubeconfig).await;
    let leases: Api<Lease> = Api::namespaced(admin.clone(), &env.operator_namespace);
    // Its own Lease, so this test does not race the scenario test's operator.
    let lease_name = "socketio-hub-operator-election-test";
    let start = |identity: &str| {
        Operator::start(&env, identity, &["--lease-seconds", "6", "--lease-name", lease_name])
    };
    let holder = || async {
        leases.get_opt(lease_name).await.ok()?.and_then(|l| l.spec?.holder_identity).filter(|h| !h.is_empty())
    };
    let mut first = start("op-elect-1");
    until("op-elect-1 leads", 30, || async { (holder().await? == "op-elect-1").then_some(()) }).await;
    let second = start("op-elect-2");
    until("op-elect-2 stands by (serves metrics, leader=0)", 30, || async {
        (second.metric("socketio_hub_operator_leader").await? == 0.0).then_some(())
    })
    .await;
    assert_eq!(holder().await.as_deref(), Some("op-elect-1"), "the standby took a held Lease");
    assert_eq!(first.metric("socketio_hub_operator_leader").await, Some(1.0));
    let t = Instant::now();
    let exit = first.terminate();
    assert!(exit.success(), "graceful shutdown exit: {exit}");
    until("op-elect-2 takes over", 30, || async { (holder().await? == "op-elect-2").then_some(()) }).await;
    until("op-elect-2 leads", 30, || async {
        (second.metric("socketio_hub_operator_leader").await? == 1.0).then_some(())
    })
    .await;
    eprintln!("  leadership handed over {:?} after SIGTERM", t.elapsed());
    drop(second);
}

/// `kubectl wait --for=condition=Ready` is truthful because every condition carries the
/// generation it describes: a Ready=True written for an older spec does not satisfy it. Checked
/// with no operator running, so the stale condition stays in place.
#[tokio::test]
async fn kubectl_wait_ignores_conditions_of_an_older_generation() {
    let Some(env) = env() else { return };
    let admin = client(&env.admin_kubeconfig).await;
    let ns = &format!("e2e-wait-{}", std::process::id());
    namespace(&admin, ns).await;
    let hubs: Api<SocketIOHub> = Api::namespaced(admin.clone(), ns);
    apply_hub(&hubs, "w", json!({ "replicas": 1 })).await;
    let write_ready = |observed: i64| {
        let hubs = hubs.clone();
        async move {
            let status = json!({ "status": { "observedGeneration": observed, "conditions": [{
                "type": "Ready", "status": "True", "reason": "AllReplicasReady", "message": "1/1 pods ready",
                "observedGeneration": observed, "lastTransitionTime": "2026-01-01T00:00:00Z" }] } });
            hubs.patch_status("w", &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
        }
    };
    write_ready(1).await;
    assert!(
        kubectl_wait_ready(&env, ns, "w", "5s"),
        "Ready=True for the current generation must satisfy kubectl wait"
    );
    let updated = apply_hub(&hubs, "w", json!({ "replicas": 1, "pingIntervalMs": 30000 })).await;
    assert_eq!(updated.metadata.generation, Some(2));
    assert!(
        !kubectl_wait_ready(&env, ns, "w", "2s"),
        "kubectl wait accepted a Ready=True written for generation 1"
    );
    write_ready(2).await;
    assert!(kubectl_wait_ready(&env, ns, "w", "5s"));
    hubs.delete("w", &DeleteParams::default()).await.unwrap();
    let _ = Api::<Namespace>::all(admin.clone()).delete(ns, &DeleteParams::default()).await;
}

/// Throughput figure: 25 hubs created at once all get their objects and a status promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_hubs_reconcile_promptly() {
    let Some(env) = env() else { return };
    let admin = client(&env.admin_kubeconfig).await;
    let op = Operator::start(&env, "op-many", &["--lease-name", "socketio-hub-operator-many"]);
    let ns = &format!("e2e-many-{}", std::process::id());
    namespace(&admin, ns).await;
    let hubs: Api<SocketIOHub> = Api::namespaced(admin.clone(), ns);
    let n = 25;
    let t0 = Instant::now();
    for i in 0..n {
        apply_hub(&hubs, &format!("hub-{i}"), json!({ "replicas": 2 })).await;
    }
    let created = t0.elapsed();
    until(&format!("all {n} hubs have a status"), 120, || async {
        let list = hubs.list(&ListParams::default()).await.ok()?;
        let done =
            list.items.iter().filter(|h| condition(h, PROGRESSING).is_some_and(|c| c.0 == "True")).count();
        (done == n).then_some(())
    })
    .await;
    let all = t0.elapsed();
    let stss: Api<Deployment> = Api::namespaced(admin.clone(), ns);
    assert_eq!(stss.list(&ListParams::default()).await.unwrap().items.len(), n);
    eprintln!("  {n} hubs applied in {created:?}; all reconciled {all:?} after the first apply");
    // Only this namespace counts: hubs left by earlier tests in terminating namespaces may fail
    // to reconcile (the API server refuses new objects there), which is expected.
    let log = std::fs::read_to_string(&op.log).unwrap();
    let failures: Vec<&str> =
        log.lines().filter(|l| l.contains("reconcile failed") && l.contains(&format!("{ns}/"))).collect();
    assert!(failures.is_empty(), "reconcile errors under load:\n{}", failures.join("\n"));
    let _ = Api::<Namespace>::all(admin.clone()).delete(ns, &DeleteParams::default()).await;
}

/// Engine.IO open over polling on `clients`; returns the session id.
async fn open_session(http: &reqwest::Client, clients: &str) -> String {
    let body = http
        .get(format!("http://{clients}/socket.io/?EIO=4&transport=polling"))
        .send()
        .await
        .expect("handshake")
        .text()
        .await
        .unwrap();
    let open: serde_json::Value = serde_json::from_str(body.strip_prefix('0').expect("open packet")).unwrap();
    open["sid"].as_str().expect("sid").to_string()
}

/// Close a polling session with an Engine.IO close packet.
async fn close_session(http: &reqwest::Client, clients: &str, sid: &str) {
    let url = format!("http://{clients}/socket.io/?EIO=4&transport=polling&sid={sid}");
    let res = http.post(url).body("1").send().await.expect("close packet");
    assert_eq!(res.status(), 200);
}

/// Autoscaling on the real API server and the real HPA controller: the operator creates a
/// HorizontalPodAutoscaler the server accepts, on the hub's scale subresource, whose selector and
/// metric the HPA controller uses (it asks for `socketio_hub_connections` and, with no metrics
/// adapter here, says it could not get it); each hub pod's deletion cost follows the connection
/// count its real hub process reports on `/load`; turning autoscaling off removes both.
///
/// The pods are Pod objects of this API server (there is no kubelet): each points its
/// `status.podIP` (patched through the status subresource, as a kubelet would) and its `admin`
/// container port at a real `socketio-hub` process on its own loopback address, 127.0.0.2 and
/// 127.0.0.3, that a real Engine.IO client connects to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoscaling_hpa_is_valid_and_pod_costs_follow_connections() {
    let Some(env) = env() else { return };
    let Some(bin) = common::hub_binary() else {
        eprintln!("SKIP: target/debug/socketio-hub is not built (scripts/operator-test builds it first)");
        return;
    };
    let admin = client(&env.admin_kubeconfig).await;
    let op = Operator::start(
        &env,
        "op-autoscale",
        &["--lease-name", "socketio-hub-operator-autoscale", "--pod-cost-seconds", "1"],
    );
    let result = tokio::time::timeout(Duration::from_secs(180), autoscaling(&admin, &bin)).await;
    if result.is_err() {
        panic!("autoscaling scenario took over 180s; operator log:\n{}", op.log_tail());
    }
    let text = reqwest::get(&op.metrics).await.unwrap().text().await.unwrap();
    assert!(
        text.contains("socketio_hub_operator_pod_cost_updates_total{result=\"ok\"}"),
        "pod-cost writes are not counted:\n{text}"
    );
}

async fn autoscaling(admin: &Client, bin: &std::path::Path) {
    use k8s_openapi::api::core::v1::Pod;
    use socketio_hub_operator::podcost::DELETION_COST_ANNOTATION;
    use socketio_hub_operator::reconcile::discover_hpa_api;
    use socketio_hub_operator::render::{selector_labels, selector_string, CONNECTIONS_METRIC};

    let ns = &format!("e2e-autoscale-{}", std::process::id());
    namespace(admin, ns).await;
    let hubs: Api<SocketIOHub> = Api::namespaced(admin.clone(), ns);
    let hpa_api = discover_hpa_api(admin).await.unwrap();
    let hpas: Api<DynamicObject> = Api::namespaced_with(admin.clone(), ns, &hpa_api);
    let pods: Api<Pod> = Api::namespaced(admin.clone(), ns);
    eprintln!("scenario: autoscaling ({})", hpa_api.api_version);

    // No `replicas`: the autoscaler owns it.
    let spec = json!({ "autoscaling": { "enabled": true, "minReplicas": 2, "maxReplicas": 6,
                                        "targetConnectionsPerPod": 100, "scaleDownStabilizationSeconds": 120 } });
    let created = apply_hub(&hubs, "live", spec).await;
    let hub = wait_condition(&hubs, "live", PROGRESSING, "True", 30).await;
    assert_eq!(hub.status.as_ref().unwrap().selector.as_deref(), Some(selector_string("live").as_str()));
    // The server validated and stored the HPA; it names the hub and the hub's metric.
    let hpa =
        until("HorizontalPodAutoscaler created", 30, || async { hpas.get_opt("live").await.ok()? }).await;
    assert!(hpa.owner_references().iter().any(|o| Some(&o.uid) == created.metadata.uid.as_ref()));
    let spec = &hpa.data["spec"];
    assert_eq!(
        spec["scaleTargetRef"],
        json!({ "apiVersion": "socketio.dev/v1alpha1", "kind": "SocketIOHub", "name": "live" })
    );
    assert_eq!((spec["minReplicas"].as_i64(), spec["maxReplicas"].as_i64()), (Some(2), Some(6)));
    assert_eq!(spec["metrics"][0]["pods"]["metric"]["name"], CONNECTIONS_METRIC);
    assert_eq!(spec["metrics"][0]["pods"]["target"]["averageValue"], "100");
    assert_eq!(spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"], 120);
    // The scale subresource the HPA reads carries the pods' selector.
    let scale = hubs.get_scale("live").await.unwrap();
    assert_eq!(scale.status.as_ref().and_then(|s| s.selector.clone()), Some(selector_string("live")));

    // The HPA controller resolves the target and asks for the metric (with readyReplicas 0 it
    // would not ask: report two ready pods as the Deployment controller would).
    let stss: Api<Deployment> = Api::namespaced(admin.clone(), ns);
    let sts = stss.get("live").await.unwrap();
    assert_eq!(
        sts.spec.as_ref().unwrap().replicas,
        Some(2),
        "spec.replicas defaults to 2 without autoscaler action"
    );
    simulate_ready_pods(&stss, "live").await;
    wait_condition(&hubs, "live", READY, "True", 30).await;
    let message = until("the HPA controller asks for socketio_hub_connections", 60, || async {
        let hpa = hpas.get("live").await.ok()?;
        let conditions = hpa.data["status"]["conditions"].as_array()?.clone();
        let find = |t: &str| conditions.iter().find(|c| c["type"] == t).cloned();
        let able = find("AbleToScale")?;
        let active = find("ScalingActive")?;
        (able["status"] == "True" && active["reason"] == "FailedGetPodsMetric")
            .then(|| active["message"].as_str().unwrap_or_default().to_string())
    })
    .await;
    assert!(message.contains(CONNECTIONS_METRIC), "ScalingActive message: {message}");
    eprintln!("  HPA controller: {message}");

    // Two hub "pods": real hubs on their own loopback addresses, Pod objects pointing at them.
    let http = reqwest::Client::new();
    let mut running = Vec::new();
    for (pod, ip) in [("live-a", "127.0.0.2"), ("live-b", "127.0.0.3")] {
        let port = std::net::TcpListener::bind(format!("{ip}:0")).unwrap().local_addr().unwrap().port();
        let hub = common::HubProcess::start(
            bin,
            &[
                format!("--listen={ip}:0"),
                format!("--admin-listen={ip}:{port}"),
                "--upstream=none".into(),
                "--ping-interval-ms=60000".into(),
            ],
        );
        let obj: Pod = serde_json::from_value(json!({
            "metadata": { "name": pod, "labels": selector_labels("live") },
            "spec": { "automountServiceAccountToken": false,
                      "containers": [{ "name": "hub", "image": "example.test/hub:1",
                                      "ports": [{ "name": "admin", "containerPort": port }] }] },
        }))
        .unwrap();
        // The namespace's default ServiceAccount (which admission requires) appears shortly after it.
        until(&format!("Pod {pod} created"), 30, || async {
            pods.create(&PostParams::default(), &obj).await.ok()
        })
        .await;
        let status = json!({ "status": { "phase": "Running", "podIP": ip, "podIPs": [{ "ip": ip }] } });
        pods.patch_status(pod, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
        running.push(hub);
    }
    let cost = |pod: &'static str| {
        let pods = pods.clone();
        async move { pods.get(pod).await.ok()?.annotations().get(DELETION_COST_ANNOTATION).cloned() }
    };
    let costs_are = |a: &'static str, b: &'static str| {
        let cost = &cost;
        async move {
            (cost("live-a").await.as_deref() == Some(a) && cost("live-b").await.as_deref() == Some(b))
                .then_some(())
        }
    };
    // Three connections on a, none on b.
    let mut a_sids = Vec::new();
    for _ in 0..3 {
        a_sids.push(open_session(&http, &running[0].clients).await);
    }
    let t = Instant::now();
    until("costs a=3 b=0", 30, || costs_are("3", "0")).await;
    eprintln!("  costs followed the connections {:?} after they opened", t.elapsed());
    // Five open on b, two of a's close: b is now the one to keep.
    for _ in 0..5 {
        open_session(&http, &running[1].clients).await;
    }
    for sid in a_sids.drain(..2) {
        close_session(&http, &running[0].clients, &sid).await;
    }
    until("costs a=1 b=5", 30, || costs_are("1", "5")).await;
    let body =
        http.get(format!("http://{}/load", running[1].admin)).send().await.unwrap().text().await.unwrap();
    let load: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(load["connections"], 5, "/load: {load}");
    assert_eq!(load["draining"], false);

    // A pod whose hub stops answering keeps its last cost (a failed read is not an empty pod).
    drop(running.remove(1));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(cost("live-b").await.as_deref(), Some("5"));

    // Autoscaling off: the HPA goes, and so do the annotations.
    apply_hub(&hubs, "live", json!({ "replicas": 2 })).await;
    until("HPA deleted", 30, || async { hpas.get_opt("live").await.ok()?.is_none().then_some(()) }).await;
    until("annotations removed", 30, || async {
        (cost("live-a").await.is_none() && cost("live-b").await.is_none()).then_some(())
    })
    .await;
    drop(running);
    let _ = Api::<Namespace>::all(admin.clone()).delete(ns, &DeleteParams::default()).await;
}

//! The contract between the operator and the data plane: the `hub.toml` the operator renders
//! into its ConfigMap, fed to the real `socketio-hub` binary, yields a hub that a real client
//! connects to, whose probes answer on the admin port, and that honours the spec's settings.
//!
//! Only the listen addresses are overridden (`--listen/--admin-listen 127.0.0.1:0`, and the
//! gossip/mesh addresses when the binary has those flags, so tests never collide on ports) and
//! the access-key and cluster-secret file paths (the Secret mounts become temp files, given with
//! `--access-keys-file` and `--cluster-secret-file`). The binary is `target/debug/socketio-hub`
//! (`SOCKETIO_HUB_BIN` overrides it); with `SIOH_CONTRACT_BUILD=1` the test builds it first.
//! Without the binary the test prints a SKIP line.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use socketio_hub_config::CONFIG_FILE_NAME;
use socketio_hub_operator::crd::SocketIOHub;
use socketio_hub_operator::render::{
    render, render_cluster_secret, render_secret, AccessKeyPair, ClusterSecret, RenderContext,
};

fn hub_binary() -> Option<PathBuf> {
    if let Ok(bin) = std::env::var("SOCKETIO_HUB_BIN") {
        return Some(PathBuf::from(bin));
    }
    let root = common::repo_root();
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
    if std::env::var("SIOH_CONTRACT_BUILD").is_ok_and(|v| v == "1") {
        // Once per test process: both tests want the binary, one build serves them.
        static BUILT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let ok = *BUILT.get_or_init(|| {
            Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "-p", "socketio-hub", "--bin", "socketio-hub"])
                .current_dir(&root)
                .status()
                .expect("cargo runs")
                .success()
        });
        assert!(ok, "cargo build -p socketio-hub failed");
    }
    let bin = target.join("debug/socketio-hub");
    bin.exists().then_some(bin)
}

/// Whether this build of the hub has `flag` (`--gossip-listen`, `--cluster-secret-file`).
fn supports_flag(bin: &PathBuf, flag: &str) -> bool {
    let help = Command::new(bin).arg("--help").output().expect("socketio-hub --help runs");
    String::from_utf8_lossy(&help.stdout).contains(flag)
}

struct Hub {
    child: Child,
    clients: String,
    admin: String,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Render `spec` as the operator would, write the ConfigMap's file and the Secret's key file as
/// the pod's mounts would, and start the hub on them.
fn start(bin: &PathBuf, name: &str, spec: serde_json::Value) -> Hub {
    let hub: SocketIOHub = serde_json::from_value(json!({
        "apiVersion": "socketio.dev/v1alpha1", "kind": "SocketIOHub",
        "metadata": { "name": name, "namespace": "apps", "uid": "00000000-0000-4000-8000-00000000c0de" },
        "spec": spec,
    }))
    .unwrap();
    let rendered = render(&hub, &RenderContext::default()).expect("spec renders");
    let secret = render_secret(&hub, &AccessKeyPair::generate()).unwrap();
    let dir = std::env::temp_dir().join(format!("sioh-contract-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join(CONFIG_FILE_NAME);
    std::fs::write(&config, &rendered.config_map.data.as_ref().unwrap()[CONFIG_FILE_NAME]).unwrap();
    let keys = dir.join("accessKeys");
    std::fs::write(&keys, &secret.data.as_ref().unwrap()["accessKeys"].0).unwrap();

    let mut cmd = Command::new(bin);
    cmd.arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--access-keys-file"])
        .arg(&keys);
    if supports_flag(bin, "--cluster-secret-file") {
        let cluster_secret = render_cluster_secret(&hub, &ClusterSecret::generate()).unwrap();
        let file = dir.join("clusterSecret");
        std::fs::write(&file, &cluster_secret.data.as_ref().unwrap()["clusterSecret"].0).unwrap();
        cmd.arg("--cluster-secret-file").arg(&file);
    }
    if supports_flag(bin, "--gossip-listen") {
        // The rendered 0.0.0.0:7946/7947 would collide between concurrent tests; the seeds stay
        // as rendered (unresolvable here, as they can be in a pod before DNS catches up).
        let gossip = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        cmd.args([
            "--gossip-listen",
            &gossip,
            "--mesh-listen",
            "127.0.0.1:0",
            "--advertise-host",
            "127.0.0.1",
        ]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .stdin(Stdio::null())
        .spawn()
        .expect("socketio-hub starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("socketio-hub ready ") {
                let _ = tx.send(line);
            }
        }
    });
    let line = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(l) => l,
        Err(_) => {
            let status = child.try_wait().ok().flatten();
            panic!(
                "{name}: no ready line within 30s (exit status: {status:?}); config:\n{}",
                std::fs::read_to_string(&config).unwrap()
            );
        }
    };
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or_else(|| panic!("ready line {line:?} lacks {key}"))
            .to_string()
    };
    Hub { clients: field("clients="), admin: field("admin="), child }
}

/// Engine.IO open over polling; returns the open packet's JSON.
async fn engine_open(http: &reqwest::Client, base: &str) -> serde_json::Value {
    let res = http.get(format!("{base}?EIO=4&transport=polling")).send().await.unwrap();
    assert_eq!(res.status(), 200, "handshake status");
    let body = res.text().await.unwrap();
    let open = body.strip_prefix('0').unwrap_or_else(|| panic!("open packet expected, got {body:?}"));
    serde_json::from_str(open).unwrap_or_else(|e| panic!("open packet {open:?}: {e}"))
}

fn skip_or_bin() -> Option<PathBuf> {
    let bin = hub_binary();
    if bin.is_none() {
        eprintln!(
            "SKIP: target/debug/socketio-hub is not built; run `cargo build -p socketio-hub` or set \
             SIOH_CONTRACT_BUILD=1 (scripts/operator-test does)"
        );
    }
    bin
}

#[tokio::test]
async fn rendered_config_runs_a_hub_a_client_connects_to() {
    let Some(bin) = skip_or_bin() else { return };
    let mut hub = start(
        &bin,
        "contract",
        json!({ "path": "/rt/", "pingIntervalMs": 12345, "shutdownGraceSeconds": 2, "upstream": { "mode": "None" } }),
    );
    let http = reqwest::Client::new();
    let base = format!("http://{}/rt/", hub.clients);

    let open = engine_open(&http, &base).await;
    let sid = open["sid"].as_str().expect("sid in the open packet").to_string();
    assert_eq!(open["pingInterval"], 12345, "the spec's pingIntervalMs reached the hub");
    assert_eq!(open["maxPayload"], 1_000_000);

    // Socket.IO CONNECT to "/".
    let url = format!("{base}?EIO=4&transport=polling&sid={sid}");
    let res = http.post(&url).body("40").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ok");
    let body = http.get(&url).send().await.unwrap().text().await.unwrap();
    let connect = body.strip_prefix("40").unwrap_or_else(|| panic!("CONNECT reply expected, got {body:?}"));
    let connect: serde_json::Value = serde_json::from_str(connect).unwrap();
    assert!(connect["sid"].is_string(), "CONNECT reply {connect}");

    // The default path is not served: the spec's path replaced it.
    let res =
        http.get(format!("http://{}/socket.io/?EIO=4&transport=polling", hub.clients)).send().await.unwrap();
    assert_ne!(res.status(), 200, "the default path still answers although the spec set /rt/");

    // The probes the Deployment points at.
    for path in ["/healthz", "/readyz"] {
        let res = http.get(format!("http://{}{path}", hub.admin)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    let metrics = http.get(format!("http://{}/metrics", hub.admin)).send().await.unwrap();
    assert_eq!(metrics.status(), 200);

    // SIGTERM (what the kubelet sends after the preStop sleep) drains within the rendered
    // shutdown grace, well inside the pod's terminationGracePeriodSeconds.
    let started = std::time::Instant::now();
    let pid = hub.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = loop {
        if let Some(status) = hub.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the hub did not stop within 10s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "drain exit status {status}");
    assert!(
        started.elapsed() <= Duration::from_secs(2 + 3),
        "drain took {:?} with a 2s grace",
        started.elapsed()
    );
}

#[tokio::test]
async fn every_example_renders_a_config_the_hub_accepts() {
    let Some(bin) = skip_or_bin() else { return };
    let http = reqwest::Client::new();
    for (stem, hub) in common::example_hubs() {
        let spec = serde_json::to_value(&hub.spec).unwrap();
        let running = start(&bin, &stem, spec);
        let base = format!("http://{}{}", running.clients, hub.spec.path);
        if hub.spec.transports.contains(&socketio_hub_operator::crd::Transport::Polling) {
            let open = engine_open(&http, &base).await;
            assert_eq!(open["pingInterval"], hub.spec.ping_interval_ms, "examples/{stem}.yaml");
        } else {
            // WebSocket-only: the spec's transports reached the hub, so polling is refused.
            let res = http.get(format!("{base}?EIO=4&transport=polling")).send().await.unwrap();
            assert_eq!(res.status(), 400, "examples/{stem}.yaml: polling must be refused");
        }
        // A node of a cluster with recovery turns ready once it knows it is alone (or its
        // streams settled): poll, with a deadline.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let res = http.get(format!("http://{}/readyz", running.admin)).send().await.unwrap();
            if res.status() == 200 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "examples/{stem}.yaml: /readyz {}", res.status());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[test]
fn the_rendered_prestop_hook_runs_in_a_shell_less_image() {
    let Some(bin) = skip_or_bin() else { return };
    let hub: SocketIOHub = serde_json::from_value(json!({
        "apiVersion": "socketio.dev/v1alpha1", "kind": "SocketIOHub",
        "metadata": { "name": "prestop", "namespace": "default", "uid": "00000000-0000-0000-0000-000000000001" },
        "spec": {},
    }))
    .expect("a valid hub");
    let rendered = render(&hub, &RenderContext::default()).expect("spec renders");
    let pod = rendered.deployment.spec.expect("spec").template.spec.expect("pod spec");
    let hook =
        pod.containers[0].lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()).expect("a preStop hook");
    let command = hook.exec.as_ref().and_then(|e| e.command.clone()).expect("an exec hook");
    // The image holds nothing but the hub binary: the hook must be that binary.
    assert_eq!(command[0], socketio_hub_operator::render::HUB_BINARY, "{command:?}");
    assert_eq!(&command[1..], ["--sleep", &socketio_hub_operator::render::PRESTOP_SLEEP_SECONDS.to_string()]);
    // The real binary sleeps as asked (1 s here instead of the hook's 5) and exits 0 ...
    let started = std::time::Instant::now();
    let status = Command::new(&bin).args(["--sleep", "1"]).status().expect("the hub binary runs");
    assert!(status.success(), "--sleep 1 exited {status}");
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(5), "--sleep 1 took {took:?}");
    // ... and refuses a sleep longer than any grace period.
    let out = Command::new(&bin).args(["--sleep", "301"]).output().expect("the hub binary runs");
    assert!(!out.status.success(), "--sleep 301 was accepted");
}

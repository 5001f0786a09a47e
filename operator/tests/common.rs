//! Helpers shared by the operator's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use socketio_hub_operator::crd::SocketIOHub;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("operator/ has a parent").to_path_buf()
}

/// Every document of every `examples/*.yaml`, as (file stem, document).
pub fn example_documents() -> Vec<(String, serde_json::Value)> {
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join("examples"))
        .expect("examples/ exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "examples/ holds no YAML");
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("readable example");
        let stem = f.file_stem().unwrap().to_string_lossy().to_string();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value: serde_json::Value =
                serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            docs.push((stem.clone(), value));
        }
    }
    docs
}

/// The SocketIOHub documents of the examples, as the API server would hand them to the
/// operator (namespace, uid and generation filled in).
pub fn example_hubs() -> Vec<(String, SocketIOHub)> {
    example_documents()
        .into_iter()
        .filter(|(_, d)| d["kind"] == "SocketIOHub")
        .map(|(stem, mut d)| {
            d["metadata"]["namespace"] = "apps".into();
            d["metadata"]["uid"] = "6f1e9a52-5b7a-4c1e-9d1e-000000000001".into();
            d["metadata"]["generation"] = 1.into();
            let hub: SocketIOHub = serde_json::from_value(d).unwrap_or_else(|e| panic!("{stem}: {e}"));
            (stem, hub)
        })
        .collect()
}

/// The `socketio-hub` binary for tests that run real hubs: `SOCKETIO_HUB_BIN`, else
/// `target/debug/socketio-hub` if built. `None` (the caller prints a SKIP line) otherwise.
pub fn hub_binary() -> Option<PathBuf> {
    if let Ok(bin) = std::env::var("SOCKETIO_HUB_BIN") {
        return Some(PathBuf::from(bin));
    }
    let target =
        std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| repo_root().join("target"));
    let bin = target.join("debug/socketio-hub");
    bin.exists().then_some(bin)
}

/// A real hub process, killed on drop.
pub struct HubProcess {
    child: std::process::Child,
    /// `host:port` of the client listener.
    pub clients: String,
    /// `host:port` of the admin listener (`/metrics`, `/load`).
    pub admin: String,
}

impl HubProcess {
    /// Run `bin` with `args` and wait for its `socketio-hub ready clients=… admin=…` line.
    pub fn start(bin: &std::path::Path, args: &[String]) -> HubProcess {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(bin)
            .args(args)
            .env("SOCKETIO_HUB_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("socketio-hub starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("socketio-hub ready ") {
                    let _ = tx.send(line);
                }
            }
        });
        let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(30)) else {
            let status = child.try_wait().ok().flatten();
            let _ = child.kill();
            panic!("socketio-hub {args:?}: no ready line within 30s (exit status {status:?})");
        };
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .unwrap_or_else(|| panic!("ready line {line:?} lacks {key}"))
                .to_string()
        };
        HubProcess { clients: field("clients="), admin: field("admin="), child }
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free UDP port on `ip` (for `--gossip-listen`).
pub fn free_udp(ip: &str) -> String {
    std::net::UdpSocket::bind(format!("{ip}:0")).expect("bind UDP").local_addr().unwrap().to_string()
}

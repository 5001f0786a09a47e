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

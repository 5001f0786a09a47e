//! Golden files for `render()`: every example hub, rendered, compared with
//! `operator/tests/golden/<example>.yaml`. Re-bless with `BLESS=1 cargo test -p
//! socketio-hub-operator --test golden` and review the diff.

mod common;

use socketio_hub_operator::render::{
    render, render_cluster_secret, render_secret, AccessKeyPair, ClusterSecret, RenderContext,
};

fn rendered_yaml(stem: &str, hub: &socketio_hub_operator::crd::SocketIOHub) -> String {
    let ctx = RenderContext { default_image: "ghcr.io/socketio-hub/socketio-hub:0.1.0".into() };
    let r = render(hub, &ctx).unwrap_or_else(|e| panic!("{e}"));
    // Fixed keys: the golden file must not change from run to run.
    let keys = AccessKeyPair {
        primary: "golden-primary-key-0123456789".into(),
        secondary: "golden-secondary-key-0123456789".into(),
    };
    let secret = render_secret(hub, &keys).unwrap();
    let cluster_secret =
        render_cluster_secret(hub, &ClusterSecret("golden-cluster-secret-0123456789abcdef".into())).unwrap();
    let mut docs = vec![
        serde_json::to_value(&r.config_map).unwrap(),
        serde_json::to_value(&secret).unwrap(),
        serde_json::to_value(&cluster_secret).unwrap(),
        serde_json::to_value(&r.headless_service).unwrap(),
        serde_json::to_value(&r.service).unwrap(),
        serde_json::to_value(&r.deployment).unwrap(),
    ];
    if let Some(pdb) = &r.pdb {
        docs.push(serde_json::to_value(pdb).unwrap());
    }
    if let Some(hpa) = &r.hpa {
        docs.push(serde_json::to_value(hpa).unwrap());
    }
    let mut out = format!(
        "# Golden render of examples/{stem}.yaml (SocketIOHub {}) — endpoint {}, config hash {}.\n",
        hub.metadata.name.as_deref().unwrap_or(""),
        r.endpoint,
        r.config_hash
    );
    for d in docs {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&d).unwrap());
    }
    out
}

#[test]
fn render_matches_golden_files() {
    let bless = std::env::var_os("BLESS").is_some();
    let dir = common::repo_root().join("operator/tests/golden");
    let hubs = common::example_hubs();
    assert!(hubs.len() >= 4, "expected the four example hubs, found {}", hubs.len());
    let mut mismatched = Vec::new();
    for (stem, hub) in hubs {
        let path = dir.join(format!("{stem}.yaml"));
        let got = rendered_yaml(&stem, &hub);
        if bless {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} is missing; run with BLESS=1 to create it", path.display()));
        if want != got {
            let first = want.lines().zip(got.lines()).position(|(a, b)| a != b).unwrap_or(0);
            mismatched.push(format!(
                "{}: first difference at line {}:\n  want: {}\n  got:  {}",
                path.display(),
                first + 1,
                want.lines().nth(first).unwrap_or("<end>"),
                got.lines().nth(first).unwrap_or("<end>")
            ));
        }
    }
    assert!(
        mismatched.is_empty(),
        "render() output changed; review and re-bless with BLESS=1:\n{}",
        mismatched.join("\n")
    );
}

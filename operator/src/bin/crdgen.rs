//! Writes the SocketIOHub CRD generated from the Rust types in `operator/src/crd.rs`.
//!
//! `crdgen` prints it; `crdgen --no-cel` prints it without CEL rules (for API servers before
//! 1.25); `crdgen --write DIR...` writes `DIR/socketiohubs.socketio.dev.yaml` in each DIR;
//! `crdgen --check DIR...` exits 1 when a file there differs (CI runs this on `crds/` and the
//! chart's `crds/`).

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use kube::CustomResourceExt;
use socketio_hub_operator::crd::SocketIOHub;

const FILE: &str = "socketiohubs.socketio.dev.yaml";

fn yaml() -> anyhow::Result<String> {
    let body = serde_yaml::to_string(&SocketIOHub::crd())?;
    Ok(format!(
        "# Generated from operator/src/crd.rs by \
         `cargo run -p socketio-hub-operator --bin crdgen -- --write crds charts/socketio-hub-operator/crds`.\n\
         # Do not edit.\n{body}"
    ))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((mode, dirs)) = args.split_first() else {
        print!("{}", yaml()?);
        return Ok(());
    };
    match mode.as_str() {
        "--no-cel" if dirs.is_empty() => {
            print!("{}", serde_yaml::to_string(&socketio_hub_operator::crd_without_cel())?)
        }
        "--write" if !dirs.is_empty() => {
            for dir in dirs {
                let path = PathBuf::from(dir).join(FILE);
                std::fs::write(&path, yaml()?).with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
        "--check" if !dirs.is_empty() => {
            let mut stale = Vec::new();
            for dir in dirs {
                let path = PathBuf::from(dir).join(FILE);
                let committed =
                    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                if committed == yaml()? {
                    eprintln!("{} is up to date", path.display());
                } else {
                    stale.push(path.display().to_string());
                }
            }
            if !stale.is_empty() {
                bail!(
                    "{} differ from the CRD generated from operator/src/crd.rs; run \
                     `cargo run -p socketio-hub-operator --bin crdgen -- --write {}` and commit",
                    stale.join(", "),
                    dirs.join(" ")
                );
            }
        }
        _ => bail!("usage: crdgen [--no-cel | --write DIR... | --check DIR...]"),
    }
    Ok(())
}

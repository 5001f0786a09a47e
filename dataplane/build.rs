//! Embeds the Socket.IO Admin UI's static files when the build is given them:
//! `SOCKETIO_HUB_ADMIN_UI_DIST=<dir>` (the `ui/dist` folder of the `@socket.io/admin-ui` npm
//! package pinned by `dataplane/admin-ui/package-lock.json`:
//! `dataplane/admin-ui/node_modules/@socket.io/admin-ui/ui/dist` after
//! `npm ci --ignore-scripts --omit=peer` there; `scripts/test` and the Dockerfile do both).
//! Without it the table is empty and `admin_ui.serve_ui` needs `admin_ui.ui_dir`, so a build
//! without npm still works. Source maps are left out.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn files(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("SOCKETIO_HUB_ADMIN_UI_DIST: cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files(&path, base, out);
        } else if path.extension().is_none_or(|x| x != "map") {
            let rel = path.strip_prefix(base).expect("under base").to_string_lossy().replace('\\', "/");
            out.push((rel, path));
        }
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=SOCKETIO_HUB_ADMIN_UI_DIST");
    let mut code = String::from("/// The Admin UI's files embedded at build time: (path, bytes).\npub static FILES: &[(&str, &[u8])] = &[\n");
    if let Some(dir) = std::env::var_os("SOCKETIO_HUB_ADMIN_UI_DIST").filter(|d| !d.is_empty()) {
        let dir = std::fs::canonicalize(PathBuf::from(&dir))
            .unwrap_or_else(|e| panic!("SOCKETIO_HUB_ADMIN_UI_DIST={}: {e}", dir.to_string_lossy()));
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut found = Vec::new();
        files(&dir, &dir, &mut found);
        assert!(
            found.iter().any(|(rel, _)| rel == "index.html"),
            "SOCKETIO_HUB_ADMIN_UI_DIST={} has no index.html (it should be the package's ui/dist)",
            dir.display()
        );
        for (rel, path) in found {
            println!("cargo:rerun-if-changed={}", path.display());
            writeln!(code, "    ({rel:?}, include_bytes!({:?})),", path.display().to_string()).unwrap();
        }
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("admin_ui_assets.rs");
    std::fs::write(out, code).expect("write admin_ui_assets.rs");
}

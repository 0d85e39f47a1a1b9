//! The project's deployment files as data: YAML read with PyYAML from the tests' venv
//! (`scripts/venv.sh`, target/venv), as JSON values.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

fn stdout_of(cmd: &mut Command) -> String {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}: {}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// target/venv (scripts/venv.sh makes it): its directory.
pub fn venv() -> PathBuf {
    PathBuf::from(stdout_of(&mut Command::new(root().join("scripts/venv.sh"))).trim())
}

/// Every YAML document of `path`, as JSON (PyYAML in the venv).
pub fn yaml(path: &Path) -> Vec<Value> {
    let out = stdout_of(
        Command::new(venv().join("bin/python"))
            .args([
                "-c",
                "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]))",
            ])
            .arg(path),
    );
    serde_json::from_str(&out).expect("JSON from PyYAML")
}

/// The one YAML document of `path`.
pub fn one_yaml(path: &Path) -> Value {
    let mut docs = yaml(path);
    assert_eq!(docs.len(), 1, "{}: one document", path.display());
    docs.remove(0)
}

/// deploy/kubernetes/daemonset.yaml.
pub fn daemonset() -> Value {
    one_yaml(&root().join("deploy/kubernetes/daemonset.yaml"))
}

/// The DaemonSet's oomtrace container.
pub fn container(ds: &Value) -> &Value {
    let cs = ds["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    cs.iter()
        .find(|c| c["name"] == "oomtrace")
        .expect("a container named oomtrace")
}

//! Container and pod names from the runtime's OCI state: the `annotations`
//! of the container's `config.json`.
//!
//! Where the file is, relative to the host root:
//!
//! | runtime | `config.json` |
//! | --- | --- |
//! | containerd | `run/containerd/io.containerd.runtime.v2.task/k8s.io/<id>/config.json` (task bundle: `<state>/<namespace>/<id>`, containerd `core/runtime/v2/bundle.go`; removed when the task is deleted) |
//! | CRI-O | `run/containers/storage/overlay-containers/<id>/userdata/config.json`, then the persistent copy under `var/lib/containers/storage/overlay-containers/<id>/userdata/` (CRI-O `server/container_create.go` saves the spec to both; containers/storage `<root>/<driver>-containers/<id>/userdata`) |
//!
//! Which annotations name what:
//!
//! | | containerd CRI | CRI-O |
//! | --- | --- | --- |
//! | container name | `io.kubernetes.cri.container-name` | `io.kubernetes.container.name` |
//! | pod name | `io.kubernetes.cri.sandbox-name` | `io.kubernetes.pod.name` (sandbox also `io.kubernetes.cri-o.KubeName`) |
//! | pod namespace | `io.kubernetes.cri.sandbox-namespace` | `io.kubernetes.pod.namespace` (sandbox also `io.kubernetes.cri-o.Namespace`) |
//! | pod UID | `io.kubernetes.cri.sandbox-uid` | `io.kubernetes.pod.uid` |
//! | sandbox? | `io.kubernetes.cri.container-type` = `sandbox` | `io.kubernetes.cri-o.ContainerType` = `sandbox` |
//!
//! containerd: `internal/cri/annotations/annotations.go` (`DefaultCRIAnnotations`
//! sets sandbox name/namespace/uid on both kinds, container name only on
//! containers). CRI-O: `pkg/annotations/internal.go` for its own keys, and
//! `internal/factory/container/container.go` (`SpecAddAnnotations`) and
//! `server/sandbox_run_linux.go` copy the kubelet's labels
//! (kubernetes/kubernetes `pkg/kubelet/types/labels.go`) into the annotations.
//!
//! Only `annotations` is deserialised, from at most [`MAX_CONFIG_BYTES`].
//!
//! Podman (outside Kubernetes) keeps no names in its OCI spec: a container's name is in
//! containers/storage's own list, `var/lib/containers/storage/overlay-containers/containers.json`
//! (rootful graph root; entries `{"id", "names": [name], …}`, containers/storage
//! `containers.go`), which stays until the container is removed. Only `id` and `names` are
//! deserialised, from at most [`MAX_STORAGE_LIST_BYTES`].

use std::collections::HashMap;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Larger `config.json` files are not read (real ones are a few tens of KiB).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// containerd's v2 task state directory, relative to the host root.
pub const CONTAINERD_TASK_DIR: &str = "run/containerd/io.containerd.runtime.v2.task";
/// The containerd namespace of the CRI plugin (Kubernetes containers).
pub const CONTAINERD_K8S_NAMESPACE: &str = "k8s.io";
/// The containerd namespace Docker uses for its containers.
pub const CONTAINERD_DOCKER_NAMESPACE: &str = "moby";
/// CRI-O's (containers/storage) run-root container directory, relative to the host root.
pub const CRIO_RUN_DIR: &str = "run/containers/storage/overlay-containers";
/// CRI-O's (containers/storage) graph-root container directory, relative to the host root.
pub const CRIO_GRAPH_DIR: &str = "var/lib/containers/storage/overlay-containers";

/// Annotation keys. containerd CRI (`internal/cri/annotations/annotations.go`).
pub mod keys {
    /// containerd: container name in the pod spec.
    pub const CONTAINERD_CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
    /// containerd: pod name.
    pub const CONTAINERD_SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
    /// containerd: pod namespace.
    pub const CONTAINERD_SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
    /// containerd: pod UID.
    pub const CONTAINERD_SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";
    /// containerd: `container` or `sandbox`.
    pub const CONTAINERD_CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
    /// Kubelet label (copied into annotations by CRI-O): container name.
    pub const KUBE_CONTAINER_NAME: &str = "io.kubernetes.container.name";
    /// Kubelet label: pod name.
    pub const KUBE_POD_NAME: &str = "io.kubernetes.pod.name";
    /// Kubelet label: pod namespace.
    pub const KUBE_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
    /// Kubelet label: pod UID.
    pub const KUBE_POD_UID: &str = "io.kubernetes.pod.uid";
    /// CRI-O: `container` or `sandbox`.
    pub const CRIO_CONTAINER_TYPE: &str = "io.kubernetes.cri-o.ContainerType";
    /// CRI-O, sandbox only: pod name.
    pub const CRIO_KUBE_NAME: &str = "io.kubernetes.cri-o.KubeName";
    /// CRI-O, sandbox only: pod namespace.
    pub const CRIO_NAMESPACE: &str = "io.kubernetes.cri-o.Namespace";
    /// The container-type value of a pod sandbox (both runtimes).
    pub const SANDBOX: &str = "sandbox";
}

/// Why a `config.json` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// Opening or reading failed (other than the file not existing).
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file is over [`MAX_CONFIG_BYTES`].
    #[error("{path} is over {MAX_CONFIG_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// Not an OCI spec with string annotations.
    #[error("parsing {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}

/// Names read from one container's annotations. Empty values count as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OciNames {
    /// The container's name in the pod spec (absent for a sandbox).
    pub container_name: Option<String>,
    /// The pod's name.
    pub pod_name: Option<String>,
    /// The pod's namespace.
    pub pod_namespace: Option<String>,
    /// The pod's UID, to check against the cgroup path's.
    pub pod_uid: Option<String>,
    /// The container is the pod sandbox (pause / infra container).
    pub sandbox: bool,
}

#[derive(Deserialize)]
struct SpecAnnotations {
    #[serde(default)]
    annotations: HashMap<String, String>,
}

/// The containerd CRI task bundle's `config.json` of a container.
#[must_use]
pub fn containerd_config(host_root: &Path, id: &str) -> PathBuf {
    host_root
        .join(CONTAINERD_TASK_DIR)
        .join(CONTAINERD_K8S_NAMESPACE)
        .join(id)
        .join("config.json")
}

/// CRI-O's `config.json` copies of a container: run root first, then graph root.
#[must_use]
pub fn crio_configs(host_root: &Path, id: &str) -> [PathBuf; 2] {
    [
        host_root
            .join(CRIO_RUN_DIR)
            .join(id)
            .join("userdata/config.json"),
        host_root
            .join(CRIO_GRAPH_DIR)
            .join(id)
            .join("userdata/config.json"),
    ]
}

/// Whether Docker (through containerd's `moby` namespace) has a task with this id:
/// tells a cri-dockerd container from a containerd one when both use a bare id.
#[must_use]
pub fn docker_task_exists(host_root: &Path, id: &str) -> bool {
    host_root
        .join(CONTAINERD_TASK_DIR)
        .join(CONTAINERD_DOCKER_NAMESPACE)
        .join(id)
        .is_dir()
}

/// Opens a runtime's file for reading, refusing anything but a regular file. Opened
/// `O_NONBLOCK`, so a FIFO (or a device) left at the path cannot block the drain thread, which
/// does this lookup between two ring records; then `fstat` must say regular file. (For a regular
/// file `O_NONBLOCK` changes nothing.)
fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ))
    }
}

/// Read the `annotations` of a `config.json`. `Ok(None)` if the file does not exist.
///
/// # Errors
///
/// [`OciError`] if the file cannot be read, is over [`MAX_CONFIG_BYTES`], or
/// is not JSON with a string-to-string `annotations` object.
pub fn read_annotations(path: &Path) -> Result<Option<HashMap<String, String>>, OciError> {
    let io_err = |source| OciError::Io {
        path: path.to_owned(),
        source,
    };
    let file = match open_regular(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io_err(err)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(OciError::TooLarge {
            path: path.to_owned(),
        });
    }
    let spec: SpecAnnotations =
        serde_json::from_slice(&bytes).map_err(|source| OciError::Json {
            path: path.to_owned(),
            source,
        })?;
    Ok(Some(spec.annotations))
}

fn get<S: BuildHasher>(annotations: &HashMap<String, String, S>, key: &str) -> Option<String> {
    annotations.get(key).filter(|v| !v.is_empty()).cloned()
}

/// Names from containerd CRI annotations.
#[must_use]
pub fn containerd_names<S: BuildHasher>(annotations: &HashMap<String, String, S>) -> OciNames {
    let sandbox = annotations
        .get(keys::CONTAINERD_CONTAINER_TYPE)
        .is_some_and(|t| t == keys::SANDBOX);
    OciNames {
        container_name: if sandbox {
            None
        } else {
            get(annotations, keys::CONTAINERD_CONTAINER_NAME)
        },
        pod_name: get(annotations, keys::CONTAINERD_SANDBOX_NAME),
        pod_namespace: get(annotations, keys::CONTAINERD_SANDBOX_NAMESPACE),
        pod_uid: get(annotations, keys::CONTAINERD_SANDBOX_UID),
        sandbox,
    }
}

/// Names from CRI-O annotations.
#[must_use]
pub fn crio_names<S: BuildHasher>(annotations: &HashMap<String, String, S>) -> OciNames {
    let sandbox = annotations
        .get(keys::CRIO_CONTAINER_TYPE)
        .is_some_and(|t| t == keys::SANDBOX);
    OciNames {
        container_name: if sandbox {
            None
        } else {
            get(annotations, keys::KUBE_CONTAINER_NAME)
        },
        pod_name: get(annotations, keys::KUBE_POD_NAME)
            .or_else(|| get(annotations, keys::CRIO_KUBE_NAME)),
        pod_namespace: get(annotations, keys::KUBE_POD_NAMESPACE)
            .or_else(|| get(annotations, keys::CRIO_NAMESPACE)),
        pod_uid: get(annotations, keys::KUBE_POD_UID),
        sandbox,
    }
}

/// Read the first existing file of `paths`; errors are logged and count as a miss.
fn first_annotations(paths: &[PathBuf]) -> Option<HashMap<String, String>> {
    paths.iter().find_map(|path| match read_annotations(path) {
        Ok(found) => found,
        Err(err) => {
            log::debug!("enrich: {err}");
            None
        }
    })
}

/// A containerd CRI container's names, if its task bundle is there.
#[must_use]
pub fn lookup_containerd(host_root: &Path, id: &str) -> Option<OciNames> {
    first_annotations(&[containerd_config(host_root, id)]).map(|a| containerd_names(&a))
}

/// Larger `containers.json` files are not read (an entry is about 600 bytes).
pub const MAX_STORAGE_LIST_BYTES: u64 = 32 << 20;

/// containers/storage's list of containers (Podman, CRI-O), relative to the host root.
#[must_use]
pub fn storage_containers_json(host_root: &Path) -> PathBuf {
    host_root.join(CRIO_GRAPH_DIR).join("containers.json")
}

#[derive(Deserialize)]
struct StorageEntry {
    id: String,
    #[serde(default)]
    names: Vec<String>,
}

/// A Podman container's name (its first name in containers/storage's list).
#[must_use]
pub fn lookup_podman(host_root: &Path, id: &str) -> Option<OciNames> {
    let path = storage_containers_json(host_root);
    let f = open_regular(&path).ok()?;
    let mut text = Vec::new();
    if let Err(e) = f.take(MAX_STORAGE_LIST_BYTES + 1).read_to_end(&mut text) {
        log::debug!("enrich: {}: {e}", path.display());
        return None;
    }
    if text.len() as u64 > MAX_STORAGE_LIST_BYTES {
        log::debug!("enrich: {} is too large to read", path.display());
        return None;
    }
    let entries: Vec<StorageEntry> = serde_json::from_slice(&text)
        .inspect_err(|e| log::debug!("enrich: {}: {e}", path.display()))
        .ok()?;
    let e = entries.into_iter().find(|e| e.id == id)?;
    Some(OciNames {
        container_name: e.names.into_iter().next(),
        ..OciNames::default()
    })
}

/// A CRI-O container's names, if one of its `config.json` copies is there.
#[must_use]
pub fn lookup_crio(host_root: &Path, id: &str) -> Option<OciNames> {
    first_annotations(&crio_configs(host_root, id)).map(|a| crio_names(&a))
}

/// The host pid of a container's init process, as its runtime recorded it:
///
/// | runtime | file |
/// | --- | --- |
/// | containerd (CRI: namespace `k8s.io`; Docker: `moby`) | `run/containerd/io.containerd.runtime.v2.task/<namespace>/<id>/init.pid` (the runc shim's `InitPidFile`, containerd `pkg/process/init.go`) |
/// | CRI-O | `run/containers/storage/overlay-containers/<id>/userdata/pidfile` (conmon's `--container-pidfile`) |
///
/// `runtime` is `Container::runtime` (`containerd`, `docker`, `cri-o`); other runtimes and a
/// missing or unreadable file (the task is already gone) give None.
#[must_use]
pub fn init_pid(host_root: &Path, runtime: &str, id: &str) -> Option<u32> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let path = match runtime {
        "containerd" => host_root
            .join(CONTAINERD_TASK_DIR)
            .join(CONTAINERD_K8S_NAMESPACE)
            .join(id)
            .join("init.pid"),
        "docker" => host_root
            .join(CONTAINERD_TASK_DIR)
            .join(CONTAINERD_DOCKER_NAMESPACE)
            .join(id)
            .join("init.pid"),
        "cri-o" => host_root
            .join(CRIO_RUN_DIR)
            .join(id)
            .join("userdata/pidfile"),
        _ => return None,
    };
    let mut text = String::new();
    open_regular(&path)
        .and_then(|f| f.take(32).read_to_string(&mut text))
        .ok()?;
    text.trim().parse().ok().filter(|p| *p > 0)
}

/// Fixture trees in the runtimes' layouts, shared with the enricher's tests.
#[cfg(test)]
pub(crate) mod fixture {
    use std::fs;
    use std::path::Path;

    use serde_json::{Map, Value, json};

    use super::keys;

    /// One container's identity in a fixture.
    pub struct Ctr<'a> {
        /// 64-hex id.
        pub id: &'a str,
        /// The pod sandbox (pause / infra) rather than a workload container.
        pub sandbox: bool,
        /// Container name in the pod spec (unused for a sandbox).
        pub container: &'a str,
        /// Pod name.
        pub pod: &'a str,
        /// Pod namespace.
        pub namespace: &'a str,
        /// Pod UID.
        pub uid: &'a str,
    }

    /// Shorthand for a [`Ctr`].
    pub fn ctr<'a>(
        id: &'a str,
        sandbox: bool,
        container: &'a str,
        pod: &'a str,
        namespace: &'a str,
        uid: &'a str,
    ) -> Ctr<'a> {
        Ctr {
            id,
            sandbox,
            container,
            pod,
            namespace,
            uid,
        }
    }

    /// A minimal OCI runtime spec with these annotations (plus the fields a
    /// real one starts with, so the parser has to skip them).
    fn spec(annotations: &[(&str, &str)]) -> String {
        let annotations: Map<String, Value> = annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect();
        json!({
            "ociVersion": "1.2.0",
            "process": { "user": { "uid": 0, "gid": 0 }, "args": ["/pause"], "cwd": "/" },
            "root": { "path": "rootfs" },
            "linux": { "cgroupsPath": "kubepods-burstable-pod.slice:cri-containerd:x", "namespaces": [{ "type": "pid" }] },
            "annotations": annotations,
        })
        .to_string()
    }

    /// containerd task bundle: `<root>/run/containerd/io.containerd.runtime.v2.task/k8s.io/<id>/config.json`
    /// (containerd `core/runtime/v2/bundle.go` `NewBundle`: `<state>/<namespace>/<id>`,
    /// with the spec written as `config.json`), annotated as `DefaultCRIAnnotations`
    /// (containerd `internal/cri/annotations/annotations.go`) does: sandbox
    /// name/namespace/uid always, container name only for a container.
    pub fn containerd(root: &Path, c: &Ctr<'_>) {
        let Ctr {
            id,
            sandbox,
            container,
            pod,
            namespace,
            uid,
        } = *c;
        let dir = root
            .join(super::CONTAINERD_TASK_DIR)
            .join(super::CONTAINERD_K8S_NAMESPACE)
            .join(id);
        fs::create_dir_all(dir.join("rootfs")).unwrap();
        let mut annotations = vec![
            ("io.kubernetes.cri.sandbox-id", id),
            (keys::CONTAINERD_SANDBOX_NAMESPACE, namespace),
            (keys::CONTAINERD_SANDBOX_UID, uid),
            (keys::CONTAINERD_SANDBOX_NAME, pod),
        ];
        if sandbox {
            annotations.push(("io.kubernetes.cri.sandbox-log-directory", "/var/log/pods/x"));
            annotations.push((keys::CONTAINERD_CONTAINER_TYPE, "sandbox"));
        } else {
            annotations.push((keys::CONTAINERD_CONTAINER_NAME, container));
            annotations.push((
                "io.kubernetes.cri.image-name",
                "docker.io/library/nginx:1.27",
            ));
            annotations.push((keys::CONTAINERD_CONTAINER_TYPE, "container"));
        }
        fs::write(dir.join("config.json"), spec(&annotations)).unwrap();
        fs::write(dir.join("init.pid"), b"4242").unwrap();
    }

    /// CRI-O run-root copy: `<root>/run/containers/storage/overlay-containers/<id>/userdata/config.json`
    /// (containers/storage `<runroot>/<driver>-containers/<id>/userdata`, vendored in
    /// cri-o/cri-o as `go.podman.io/storage/store.go`; CRI-O `server/container_create.go`
    /// saves `config.json` there). Annotations as `SpecAddAnnotations`
    /// (`internal/factory/container/container.go`) and `server/sandbox_run_linux.go`
    /// set them: CRI-O's own `io.kubernetes.cri-o.*` keys (`pkg/annotations/internal.go`)
    /// plus the kubelet's labels copied verbatim.
    pub fn crio(root: &Path, dir: &str, c: &Ctr<'_>) {
        let Ctr {
            id,
            sandbox,
            container,
            pod,
            namespace,
            uid,
        } = *c;
        let userdata = root.join(dir).join(id).join("userdata");
        fs::create_dir_all(&userdata).unwrap();
        let full_name = format!("k8s_{container}_{pod}_{namespace}_{uid}_0");
        let mut annotations = vec![
            ("io.container.manager", "cri-o"),
            ("io.kubernetes.cri-o.ContainerID", id),
            ("io.kubernetes.cri-o.Name", full_name.as_str()),
            (keys::KUBE_POD_NAME, pod),
            (keys::KUBE_POD_NAMESPACE, namespace),
            (keys::KUBE_POD_UID, uid),
        ];
        if sandbox {
            annotations.push((keys::CRIO_CONTAINER_TYPE, "sandbox"));
            annotations.push((keys::CRIO_KUBE_NAME, pod));
            annotations.push((keys::CRIO_NAMESPACE, namespace));
        } else {
            annotations.push((keys::CRIO_CONTAINER_TYPE, "container"));
            annotations.push((keys::KUBE_CONTAINER_NAME, container));
            annotations.push(("io.kubernetes.container.restartCount", "0"));
        }
        fs::write(userdata.join("config.json"), spec(&annotations)).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::fixture::ctr as oci_ctr;
    use super::*;

    const ID: &str = "4c0d3a9be6f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b";
    const UID: &str = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b";

    fn names(container: Option<&str>, sandbox: bool) -> OciNames {
        OciNames {
            container_name: container.map(str::to_owned),
            pod_name: Some("web-0".into()),
            pod_namespace: Some("shop".into()),
            pod_uid: Some(UID.into()),
            sandbox,
        }
    }

    fn mkfifo(path: &Path) {
        use std::os::unix::ffi::OsStrExt as _;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo(3) reads the NUL-terminated path only.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    }

    /// A FIFO where a runtime's file should be (one nothing ever writes) is refused at once: the
    /// lookups run on the drain thread, which a blocking `open` would stop for good.
    #[test]
    fn a_fifo_in_place_of_a_runtime_file_is_refused_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        fixture::containerd(&root, &oci_ctr(ID, false, "nginx", "web-0", "shop", UID));
        let config = containerd_config(&root, ID);
        fs::remove_file(&config).unwrap();
        mkfifo(&config);
        let pid_file = config.with_file_name("init.pid");
        let _ = fs::remove_file(&pid_file);
        mkfifo(&pid_file);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let r = (
                read_annotations(&config).map_err(|e| e.to_string()),
                lookup_containerd(&root, ID),
                init_pid(&root, "containerd", ID),
            );
            tx.send(r).unwrap();
        });
        let (annotations, names, pid) = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the lookups returned (a FIFO blocked them)");
        let e = annotations.expect_err("a FIFO is no config.json");
        assert!(e.contains("not a regular file"), "{e}");
        assert_eq!(names, None);
        assert_eq!(pid, None);
    }

    #[test]
    fn containerd_container_and_sandbox() {
        let tmp = tempfile::tempdir().unwrap();
        fixture::containerd(
            tmp.path(),
            &oci_ctr(ID, false, "nginx", "web-0", "shop", UID),
        );
        assert_eq!(
            lookup_containerd(tmp.path(), ID),
            Some(names(Some("nginx"), false))
        );
        let pause = ID.replace('4', "7");
        fixture::containerd(tmp.path(), &oci_ctr(&pause, true, "", "web-0", "shop", UID));
        assert_eq!(
            lookup_containerd(tmp.path(), &pause),
            Some(names(None, true))
        );
        assert_eq!(lookup_containerd(tmp.path(), &ID.replace('4', "8")), None);
    }

    #[test]
    fn crio_container_and_sandbox_in_run_root() {
        let tmp = tempfile::tempdir().unwrap();
        fixture::crio(
            tmp.path(),
            CRIO_RUN_DIR,
            &oci_ctr(ID, false, "nginx", "web-0", "shop", UID),
        );
        assert_eq!(
            lookup_crio(tmp.path(), ID),
            Some(names(Some("nginx"), false))
        );
        let infra = ID.replace('4', "7");
        fixture::crio(
            tmp.path(),
            CRIO_RUN_DIR,
            &oci_ctr(&infra, true, "POD", "web-0", "shop", UID),
        );
        assert_eq!(lookup_crio(tmp.path(), &infra), Some(names(None, true)));
    }

    #[test]
    fn crio_graph_root_copy_outlives_run_root() {
        let tmp = tempfile::tempdir().unwrap();
        fixture::crio(
            tmp.path(),
            CRIO_GRAPH_DIR,
            &oci_ctr(ID, false, "nginx", "web-0", "shop", UID),
        );
        assert_eq!(
            lookup_crio(tmp.path(), ID),
            Some(names(Some("nginx"), false))
        );
    }

    #[test]
    fn crio_sandbox_falls_back_to_crio_keys() {
        let a: HashMap<String, String> = [
            (keys::CRIO_CONTAINER_TYPE, "sandbox"),
            (keys::CRIO_KUBE_NAME, "web-0"),
            (keys::CRIO_NAMESPACE, "shop"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let n = crio_names(&a);
        assert!(n.sandbox);
        assert_eq!(
            (n.pod_name.as_deref(), n.pod_namespace.as_deref()),
            (Some("web-0"), Some("shop"))
        );
    }

    #[test]
    fn bad_files_are_errors_missing_is_none() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(
            read_annotations(&tmp.path().join("nope.json"))
                .unwrap()
                .is_none()
        );
        let garbage = tmp.path().join("garbage.json");
        fs::write(&garbage, b"{not json").unwrap();
        assert!(matches!(
            read_annotations(&garbage),
            Err(OciError::Json { .. })
        ));
        let big = tmp.path().join("big.json");
        #[allow(clippy::cast_possible_truncation)]
        let padding = " ".repeat(MAX_CONFIG_BYTES as usize);
        fs::write(&big, format!("{{{padding}}}")).unwrap();
        assert!(matches!(
            read_annotations(&big),
            Err(OciError::TooLarge { .. })
        ));
        let none = tmp.path().join("none.json");
        fs::write(&none, br#"{"ociVersion":"1.0.2"}"#).unwrap();
        assert_eq!(read_annotations(&none).unwrap(), Some(HashMap::new()));
        // an unreadable (here: directory) config is a miss for the look-up
        fs::create_dir_all(containerd_config(tmp.path(), ID)).unwrap();
        assert_eq!(lookup_containerd(tmp.path(), ID), None);
    }

    #[test]
    fn podman_names_from_the_storage_list() {
        let d = tempfile::tempdir().unwrap();
        let id = "06dd2dea819404d849156c703c33df3ce3695e6a6b463b4da9943a60ef527acf";
        assert_eq!(lookup_podman(d.path(), id), None, "no list: no names");
        let list = storage_containers_json(d.path());
        std::fs::create_dir_all(list.parent().unwrap()).unwrap();
        // The shape of a real entry (podman 4.3, Debian 12).
        std::fs::write(
            &list,
            format!(
                r#"[{{"id":"{}","names":["other"],"image":"x"}},{{"id":"{id}","names":["oomt1"],"image":"6ddc","layer":"5239","metadata":"{{\"name\":\"oomt1\"}}","created":"2026-12-05T06:07:06.277081126Z","flags":{{"MountLabel":""}}}}]"#,
                "a".repeat(64)
            ),
        )
        .unwrap();
        assert_eq!(
            lookup_podman(d.path(), id).and_then(|n| n.container_name),
            Some("oomt1".into())
        );
        assert_eq!(lookup_podman(d.path(), &"b".repeat(64)), None);
        std::fs::write(&list, "not json").unwrap();
        assert_eq!(
            lookup_podman(d.path(), id),
            None,
            "a bad list is no name, no panic"
        );
    }

    #[test]
    fn docker_task_dir() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(!docker_task_exists(tmp.path(), ID));
        fs::create_dir_all(tmp.path().join(CONTAINERD_TASK_DIR).join("moby").join(ID)).unwrap();
        assert!(docker_task_exists(tmp.path(), ID));
    }

    #[test]
    fn init_pid_files_of_each_runtime() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        assert_eq!(init_pid(root, "containerd", ID), None, "no task");
        let k8s = root.join(CONTAINERD_TASK_DIR).join("k8s.io").join(ID);
        fs::create_dir_all(&k8s).unwrap();
        fs::write(k8s.join("init.pid"), "4242").unwrap();
        assert_eq!(init_pid(root, "containerd", ID), Some(4242));
        let moby = root.join(CONTAINERD_TASK_DIR).join("moby").join(ID);
        fs::create_dir_all(&moby).unwrap();
        fs::write(moby.join("init.pid"), "77\n").unwrap();
        assert_eq!(init_pid(root, "docker", ID), Some(77));
        let crio = root.join(CRIO_RUN_DIR).join(ID).join("userdata");
        fs::create_dir_all(&crio).unwrap();
        fs::write(crio.join("pidfile"), "99").unwrap();
        assert_eq!(init_pid(root, "cri-o", ID), Some(99));
        assert_eq!(init_pid(root, "podman", ID), None);
        assert_eq!(
            init_pid(root, "containerd", "../../etc"),
            None,
            "ids are hex only"
        );
        fs::write(k8s.join("init.pid"), "garbage").unwrap();
        assert_eq!(init_pid(root, "containerd", ID), None);
    }
}

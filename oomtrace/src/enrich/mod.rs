//! Attribution: the enrichment stage that turns a cgroup path into the
//! container, pod, namespace, container name, `QoS` class and systemd unit that
//! own it — from the node's own files, without API-server credentials.
//!
//! Sources, each a module with its own tests:
//!
//! 1. [`cgroup_path`]: the path itself (pure parsing, no I/O): pod UID and `QoS`,
//!    container id and runtime, systemd unit, conmon scopes.
//! 2. [`oci`]: the runtime's OCI state (`config.json` annotations of containerd
//!    and CRI-O): container name, pod name and namespace, sandbox or not.
//! 3. [`kubelet`]: the kubelet's log directories (`/var/log/pods`,
//!    `/var/log/containers`): pod name and namespace by UID, and a container's
//!    name by id when the runtime's state is already gone.
//!
//! All files are read under a host root (`--host-root`, default `/`), so a
//! `DaemonSet` can read the host's files mounted at `/host`. [`Enricher::attribute`]
//! is synchronous and bounded: a few small files and at most two directory
//! listings of capped length per miss, no network. Results are cached by
//! container id and pod UID; misses too, for a short time, so that a pod
//! created later is found. When a source misses, the event goes out with what
//! is known: the path alone always gives the ids.
//!
//! Names are only used when they agree with the path: a `config.json` whose
//! pod UID differs from the path's is ignored, as is a `/var/log/containers`
//! link whose pod differs from the pod found by UID.

pub mod cgroup_path;
pub mod kubelet;
pub mod oci;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use cgroup_path::Qos;
use cgroup_path::{ContainerRef, Driver, Runtime};

/// `--host-root` default: the daemon runs on the host's filesystem.
pub const DEFAULT_HOST_ROOT: &str = "/";

/// How long a failed look-up is remembered before the files are read again.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(10);

/// How long a successful look-up is remembered. Names of a container id or
/// pod UID never change; the limit only bounds memory together with
/// [`CACHE_CAPACITY`].
pub const DEFAULT_POSITIVE_TTL: Duration = Duration::from_hours(1);

/// Entries per cache (containers, pods).
pub const CACHE_CAPACITY: usize = 4096;

/// `container.name` of a pod's sandbox (pause / infra) container. It is the
/// kubelet's own name for it (`kubeSandboxNamePrefix`), and cannot clash with a
/// real container name, which is a lowercase DNS-1123 label.
pub const SANDBOX_CONTAINER_NAME: &str = "POD";

/// Who owns a cgroup. Serialised into events; the field names are a public
/// contract. Absent facts are omitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Attribution {
    /// The container, if the cgroup is a container's (or below one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// The Kubernetes pod, if the cgroup is a pod's (or below one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<Pod>,
    /// The systemd service or scope of a cgroup that is not a container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
}

impl Attribution {
    /// True when nothing is known.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.container.is_none() && self.pod.is_none() && self.systemd_unit.is_none()
    }
}

/// A container in an [`Attribution`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Container {
    /// The 64-hex-digit container id.
    pub id: String,
    /// `containerd`, `cri-o`, `docker` or `podman`.
    pub runtime: String,
    /// The name in the pod spec; [`SANDBOX_CONTAINER_NAME`] for the pod sandbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A Kubernetes pod in an [`Attribution`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pod {
    /// The pod UID.
    pub uid: String,
    /// `QoS` class: `guaranteed`, `burstable` or `besteffort`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qos: Option<Qos>,
    /// `metadata.name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `metadata.namespace`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// What the files say about one container id (merged over the sources).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ContainerFacts {
    /// The runtime, if the state directories corrected the path's guess.
    runtime: Option<Runtime>,
    name: Option<String>,
    sandbox: bool,
    /// Pod names with the UID they were read with (OCI) — used only if it matches the path.
    pod_uid: Option<String>,
    pod_name: Option<String>,
    pod_namespace: Option<String>,
}

impl ContainerFacts {
    /// Nothing more will be learnt by reading again.
    fn complete(&self) -> bool {
        self.sandbox || self.name.is_some()
    }
}

/// A small map whose entries expire; bounded by a capacity.
struct TtlCache<V> {
    entries: HashMap<String, (V, Instant)>,
    capacity: usize,
}

impl<V: Clone> TtlCache<V> {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity,
        }
    }

    fn get(&self, key: &str, now: Instant) -> Option<V> {
        self.entries
            .get(key)
            .filter(|(_, expires)| *expires > now)
            .map(|(v, _)| v.clone())
    }

    fn insert(&mut self, key: &str, value: V, expires: Instant, now: Instant) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(key) {
            self.entries.retain(|_, (_, e)| *e > now);
            if self.entries.len() >= self.capacity {
                let oldest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, e))| *e)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    self.entries.remove(&oldest);
                }
            }
        }
        self.entries.insert(key.to_owned(), (value, expires));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The enrichment stage. Cheap to share: `Send + Sync`, internally cached.
pub struct Enricher {
    host_root: PathBuf,
    negative_ttl: Duration,
    positive_ttl: Duration,
    containers: Mutex<TtlCache<ContainerFacts>>,
    pods: Mutex<TtlCache<Option<kubelet::PodNames>>>,
}

impl std::fmt::Debug for Enricher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enricher")
            .field("host_root", &self.host_root)
            .field("negative_ttl", &self.negative_ttl)
            .field("positive_ttl", &self.positive_ttl)
            .finish_non_exhaustive()
    }
}

impl Enricher {
    /// An enricher reading the node's files under `host_root` (`/`, or `/host`
    /// in a container that mounts the host there).
    pub fn new(host_root: impl Into<PathBuf>) -> Self {
        Self {
            host_root: host_root.into(),
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            positive_ttl: DEFAULT_POSITIVE_TTL,
            containers: Mutex::new(TtlCache::new(CACHE_CAPACITY)),
            pods: Mutex::new(TtlCache::new(CACHE_CAPACITY)),
        }
    }

    /// How long a miss is cached (default [`DEFAULT_NEGATIVE_TTL`]).
    #[must_use]
    pub fn with_negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// How long a hit is cached (default [`DEFAULT_POSITIVE_TTL`]).
    #[must_use]
    pub fn with_positive_ttl(mut self, ttl: Duration) -> Self {
        self.positive_ttl = ttl;
        self
    }

    /// The host root files are read under.
    pub fn host_root(&self) -> &Path {
        &self.host_root
    }

    /// Attribute a cgroup path (the victim's, or the OOM domain's). Never
    /// fails: what cannot be found is left out.
    pub fn attribute(&self, cgroup_path: &str) -> Attribution {
        self.attribute_at(cgroup_path, Instant::now())
    }

    fn attribute_at(&self, cgroup_path: &str, now: Instant) -> Attribution {
        let info = cgroup_path::parse(cgroup_path);
        let path_uid = info.pod.as_ref().map(|p| p.uid.as_str());
        let facts = info
            .container
            .as_ref()
            .map(|c| self.container_facts(c, info.driver, path_uid, now));

        let pod = info.pod.as_ref().map(|p| {
            let mut pod = Pod {
                uid: p.uid.clone(),
                qos: Some(p.qos),
                name: None,
                namespace: None,
            };
            if let Some(f) = facts
                .as_ref()
                .filter(|f| f.pod_uid.as_deref() == Some(p.uid.as_str()))
            {
                pod.name.clone_from(&f.pod_name);
                pod.namespace.clone_from(&f.pod_namespace);
            }
            if (pod.name.is_none() || pod.namespace.is_none())
                && let Some(names) = self.pod_names(&p.uid, now)
            {
                pod.name = Some(names.name);
                pod.namespace = Some(names.namespace);
            }
            pod
        });

        let container = info.container.map(|c| {
            let facts = facts.unwrap_or_default();
            Container {
                runtime: facts.runtime.unwrap_or(c.runtime).as_str().to_owned(),
                id: c.id,
                name: if facts.sandbox {
                    Some(SANDBOX_CONTAINER_NAME.to_owned())
                } else {
                    facts.name
                },
            }
        });

        Attribution {
            container,
            pod,
            systemd_unit: info.systemd_unit,
        }
    }

    /// Pod names by UID from the kubelet's pod log directories, cached.
    fn pod_names(&self, uid: &str, now: Instant) -> Option<kubelet::PodNames> {
        if let Some(cached) = lock(&self.pods).get(uid, now) {
            return cached;
        }
        let found = kubelet::find_pod(&self.host_root, uid);
        let ttl = if found.is_some() {
            self.positive_ttl
        } else {
            self.negative_ttl
        };
        lock(&self.pods).insert(uid, found.clone(), now + ttl, now);
        found
    }

    /// The host pid of the container's init, from its runtime's state ([`oci::init_pid`]); not
    /// cached (it changes when the container restarts). None once the task is gone.
    #[must_use]
    pub fn container_init_pid(&self, c: &Container) -> Option<u32> {
        oci::init_pid(&self.host_root, &c.runtime, &c.id)
    }

    /// Names of a container id, cached. The lock is not held during I/O.
    fn container_facts(
        &self,
        container: &ContainerRef,
        driver: Option<Driver>,
        path_uid: Option<&str>,
        now: Instant,
    ) -> ContainerFacts {
        if let Some(cached) = lock(&self.containers).get(&container.id, now) {
            return cached;
        }
        let facts = self.read_container_facts(container, driver, path_uid, now);
        let ttl = if facts.complete() {
            self.positive_ttl
        } else {
            self.negative_ttl
        };
        lock(&self.containers).insert(&container.id, facts.clone(), now + ttl, now);
        facts
    }

    fn read_container_facts(
        &self,
        container: &ContainerRef,
        driver: Option<Driver>,
        path_uid: Option<&str>,
        now: Instant,
    ) -> ContainerFacts {
        let root = &self.host_root;
        let id = container.id.as_str();
        let mut facts = ContainerFacts::default();
        let oci = match container.runtime {
            Runtime::Containerd => {
                let found = oci::lookup_containerd(root, id);
                // cri-dockerd names cgroupfs containers like containerd does.
                if found.is_none()
                    && driver == Some(Driver::Cgroupfs)
                    && oci::docker_task_exists(root, id)
                {
                    facts.runtime = Some(Runtime::Docker);
                }
                found
            }
            Runtime::CriO => oci::lookup_crio(root, id),
            // Podman's names are in containers/storage's list, not in its OCI spec.
            Runtime::Podman => oci::lookup_podman(root, id),
            // Docker keeps no names in its OCI specs.
            Runtime::Docker => None,
        };
        if let Some(oci) = oci {
            if oci.pod_uid.is_some() && path_uid.is_some() && oci.pod_uid.as_deref() != path_uid {
                log::debug!(
                    "enrich: {id}: config.json names pod {:?}, the cgroup pod {path_uid:?}",
                    oci.pod_uid
                );
            } else {
                facts.name = oci.container_name;
                facts.sandbox = oci.sandbox;
                facts.pod_uid = oci.pod_uid;
                facts.pod_name = oci.pod_name;
                facts.pod_namespace = oci.pod_namespace;
            }
        }
        // The runtime's task state goes when the container dies (an OOM kill of
        // its init does that); the kubelet's log symlink stays until the
        // container is garbage-collected.
        if !facts.complete()
            && let Some(uid) = path_uid
            && let Some(link) = kubelet::find_container(root, id)
        {
            if self.pod_names(uid, now).is_none_or(|pod| pod == link.pod) {
                facts.name = Some(link.container_name);
            } else {
                log::debug!(
                    "enrich: {id}: /var/log/containers names pod {:?}, not pod {uid}",
                    link.pod
                );
            }
        }
        facts
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::oci::fixture::ctr as oci_ctr;
    use super::*;

    const ID: &str = "4c0d3a9be6f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b";
    const PAUSE: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0";
    const UID: &str = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b";
    const UID_: &str = "6f1e2d3c_4b5a_4978_8a6b_5c4d3e2f1a0b";
    const OTHER_UID: &str = "11111111-2222-4333-8444-555555555555";

    fn systemd_path(prefix: &str, id: &str) -> String {
        format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/{prefix}-{id}.scope"
        )
    }

    #[allow(clippy::unnecessary_wraps)] // reads better next to `None` in assertions
    fn pod(name: Option<&str>, namespace: Option<&str>) -> Option<Pod> {
        Some(Pod {
            uid: UID.into(),
            qos: Some(Qos::Burstable),
            name: name.map(str::to_owned),
            namespace: namespace.map(str::to_owned),
        })
    }

    #[allow(clippy::unnecessary_wraps)]
    fn container(id: &str, runtime: &str, name: Option<&str>) -> Option<Container> {
        Some(Container {
            id: id.into(),
            runtime: runtime.into(),
            name: name.map(str::to_owned),
        })
    }

    #[test]
    fn enricher_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Enricher>();
    }

    #[test]
    fn containerd_full_attribution_and_json() {
        let tmp = tempfile::tempdir().unwrap();
        oci::fixture::containerd(
            tmp.path(),
            &oci_ctr(ID, false, "nginx", "web-0", "shop", UID),
        );
        let e = Enricher::new(tmp.path());
        let a = e.attribute(&systemd_path("cri-containerd", ID));
        assert_eq!(a.container, container(ID, "containerd", Some("nginx")));
        assert_eq!(a.pod, pod(Some("web-0"), Some("shop")));
        assert_eq!(a.systemd_unit, None);
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "container": { "id": ID, "runtime": "containerd", "name": "nginx" },
                "pod": { "uid": UID, "qos": "burstable", "name": "web-0", "namespace": "shop" }
            })
        );
    }

    #[test]
    fn containerd_sandbox_is_marked() {
        let tmp = tempfile::tempdir().unwrap();
        oci::fixture::containerd(tmp.path(), &oci_ctr(PAUSE, true, "", "web-0", "shop", UID));
        let a = Enricher::new(tmp.path()).attribute(&systemd_path("cri-containerd", PAUSE));
        assert_eq!(
            a.container,
            container(PAUSE, "containerd", Some(SANDBOX_CONTAINER_NAME))
        );
        assert_eq!(a.pod, pod(Some("web-0"), Some("shop")));
    }

    #[test]
    fn crio_full_attribution_cgroupfs() {
        let tmp = tempfile::tempdir().unwrap();
        oci::fixture::crio(
            tmp.path(),
            oci::CRIO_RUN_DIR,
            &oci_ctr(ID, false, "app", "api-7d9c", "prod", UID),
        );
        let a =
            Enricher::new(tmp.path()).attribute(&format!("/kubepods/burstable/pod{UID}/crio-{ID}"));
        assert_eq!(a.container, container(ID, "cri-o", Some("app")));
        assert_eq!(a.pod, pod(Some("api-7d9c"), Some("prod")));
    }

    #[test]
    fn crio_conmon_gets_pod_not_container() {
        let tmp = tempfile::tempdir().unwrap();
        kubelet::fixture::pod_logs(tmp.path(), "prod", "api-7d9c", UID, &["app"]);
        oci::fixture::crio(
            tmp.path(),
            oci::CRIO_RUN_DIR,
            &oci_ctr(ID, false, "app", "api-7d9c", "prod", UID),
        );
        let a = Enricher::new(tmp.path()).attribute(&systemd_path("crio-conmon", ID));
        assert_eq!(a.container, None);
        assert_eq!(a.pod, pod(Some("api-7d9c"), Some("prod")));
        assert_eq!(a.systemd_unit, Some(format!("crio-conmon-{ID}.scope")));
    }

    #[test]
    fn pod_level_path_uses_kubelet_dir() {
        let tmp = tempfile::tempdir().unwrap();
        kubelet::fixture::pod_logs(tmp.path(), "shop", "web-0", UID, &["nginx"]);
        let a = Enricher::new(tmp.path()).attribute(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice"
        ));
        assert_eq!(a.container, None);
        assert_eq!(a.pod, pod(Some("web-0"), Some("shop")));
    }

    #[test]
    fn task_state_gone_falls_back_to_kubelet_files() {
        // The container's init was the victim: containerd already deleted the bundle.
        let tmp = tempfile::tempdir().unwrap();
        kubelet::fixture::pod_logs(tmp.path(), "shop", "web-0", UID, &["nginx"]);
        kubelet::fixture::container_link(tmp.path(), "shop", "web-0", UID, "nginx", ID);
        let a = Enricher::new(tmp.path()).attribute(&format!("/kubepods/burstable/pod{UID}/{ID}"));
        assert_eq!(a.container, container(ID, "containerd", Some("nginx")));
        assert_eq!(a.pod, pod(Some("web-0"), Some("shop")));
    }

    #[test]
    fn names_that_disagree_with_the_path_are_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        // config.json says another pod
        oci::fixture::containerd(
            tmp.path(),
            &oci_ctr(ID, false, "nginx", "other", "shop", OTHER_UID),
        );
        // and the log link names a pod other than the one found by UID
        kubelet::fixture::pod_logs(tmp.path(), "shop", "web-0", UID, &["nginx"]);
        kubelet::fixture::container_link(tmp.path(), "shop", "other", OTHER_UID, "nginx", ID);
        let a = Enricher::new(tmp.path()).attribute(&systemd_path("cri-containerd", ID));
        assert_eq!(a.container, container(ID, "containerd", None));
        assert_eq!(a.pod, pod(Some("web-0"), Some("shop")));
    }

    #[test]
    fn cri_dockerd_bare_id_is_docker() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(
            tmp.path()
                .join(oci::CONTAINERD_TASK_DIR)
                .join("moby")
                .join(ID),
        )
        .unwrap();
        let a = Enricher::new(tmp.path()).attribute(&format!("/kubepods/burstable/pod{UID}/{ID}"));
        assert_eq!(a.container, container(ID, "docker", None));
    }

    #[test]
    fn nothing_on_disk_still_gives_path_facts() {
        let tmp = tempfile::tempdir().unwrap();
        let e = Enricher::new(tmp.path());
        let a = e.attribute(&systemd_path("cri-containerd", ID));
        assert_eq!(a.container, container(ID, "containerd", None));
        assert_eq!(a.pod, pod(None, None));
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"container":{{"id":"{ID}","runtime":"containerd"}},"pod":{{"uid":"{UID}","qos":"burstable"}}}}"#
            )
        );
        assert_eq!(
            e.attribute(&format!("/docker/{ID}")).container,
            container(ID, "docker", None)
        );
        let unit = e.attribute("/system.slice/nginx.service");
        assert_eq!(
            serde_json::to_string(&unit).unwrap(),
            r#"{"systemd_unit":"nginx.service"}"#
        );
        let nothing = e.attribute("/foo/bar");
        assert!(nothing.is_empty());
        assert_eq!(serde_json::to_string(&nothing).unwrap(), "{}");
    }

    #[test]
    fn host_root_prefix_is_used() {
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join("host");
        oci::fixture::containerd(&host, &oci_ctr(ID, false, "nginx", "web-0", "shop", UID));
        assert_eq!(
            Enricher::new(tmp.path())
                .attribute(&systemd_path("cri-containerd", ID))
                .pod,
            pod(None, None)
        );
        let e = Enricher::new(&host);
        assert_eq!(e.host_root(), host.as_path());
        assert_eq!(
            e.attribute(&systemd_path("cri-containerd", ID)).pod,
            pod(Some("web-0"), Some("shop"))
        );
    }

    #[test]
    fn hits_are_cached_without_rereading() {
        let tmp = tempfile::tempdir().unwrap();
        oci::fixture::containerd(
            tmp.path(),
            &oci_ctr(ID, false, "nginx", "web-0", "shop", UID),
        );
        kubelet::fixture::pod_logs(tmp.path(), "prod", "api-7d9c", OTHER_UID, &["app"]);
        let e = Enricher::new(tmp.path());
        let path = systemd_path("cri-containerd", ID);
        let other_pod = format!("/kubepods/pod{OTHER_UID}");
        let first = e.attribute(&path);
        let first_pod = e.attribute(&other_pod);
        fs::remove_dir_all(tmp.path().join("run")).unwrap();
        fs::remove_dir_all(tmp.path().join("var")).unwrap();
        assert_eq!(e.attribute(&path), first);
        assert_eq!(e.attribute(&other_pod), first_pod);
        assert_eq!(
            first_pod.pod.and_then(|p| p.name).as_deref(),
            Some("api-7d9c")
        );
    }

    #[test]
    fn misses_are_retried_after_their_expiry() {
        let tmp = tempfile::tempdir().unwrap();
        let ttl = Duration::from_secs(5);
        let e = Enricher::new(tmp.path()).with_negative_ttl(ttl);
        let t0 = Instant::now();
        let path = systemd_path("cri-containerd", ID);
        let pod_path = format!("/kubepods/pod{OTHER_UID}");
        assert_eq!(
            e.attribute_at(&path, t0).container,
            container(ID, "containerd", None)
        );
        assert_eq!(e.attribute_at(&pod_path, t0).pod.and_then(|p| p.name), None);
        // The pod appears on disk; within the negative expiry the miss is still cached.
        oci::fixture::containerd(
            tmp.path(),
            &oci_ctr(ID, false, "nginx", "web-0", "shop", UID),
        );
        kubelet::fixture::pod_logs(tmp.path(), "prod", "api-7d9c", OTHER_UID, &["app"]);
        let within = t0 + ttl.saturating_sub(Duration::from_millis(1));
        assert_eq!(
            e.attribute_at(&path, within).container,
            container(ID, "containerd", None)
        );
        assert_eq!(
            e.attribute_at(&pod_path, within).pod.and_then(|p| p.name),
            None
        );
        // After it, the files are read again.
        let after = t0 + ttl + Duration::from_millis(1);
        assert_eq!(
            e.attribute_at(&path, after).container,
            container(ID, "containerd", Some("nginx"))
        );
        assert_eq!(
            e.attribute_at(&pod_path, after)
                .pod
                .and_then(|p| p.name)
                .as_deref(),
            Some("api-7d9c")
        );
    }

    #[test]
    fn positive_entries_expire_too() {
        let tmp = tempfile::tempdir().unwrap();
        oci::fixture::containerd(
            tmp.path(),
            &oci_ctr(ID, false, "nginx", "web-0", "shop", UID),
        );
        let e = Enricher::new(tmp.path()).with_positive_ttl(Duration::from_secs(1));
        let t0 = Instant::now();
        let path = systemd_path("cri-containerd", ID);
        assert!(
            e.attribute_at(&path, t0)
                .container
                .and_then(|c| c.name)
                .is_some()
        );
        fs::remove_dir_all(tmp.path().join("run")).unwrap();
        let later = t0 + Duration::from_secs(2);
        assert!(
            e.attribute_at(&path, later)
                .container
                .and_then(|c| c.name)
                .is_none()
        );
    }

    #[test]
    fn cache_is_bounded() {
        let mut cache: TtlCache<u32> = TtlCache::new(3);
        let now = Instant::now();
        let later = now + Duration::from_secs(10);
        for (i, key) in ["a", "b", "c", "d"].into_iter().enumerate() {
            cache.insert(
                key,
                u32::try_from(i).unwrap(),
                later + Duration::from_secs(i as u64),
                now,
            );
        }
        assert_eq!(cache.entries.len(), 3);
        assert_eq!(
            cache.get("a", now),
            None,
            "the entry expiring first was evicted"
        );
        assert_eq!(cache.get("d", now), Some(3));
        // expired entries go first
        cache.insert("e", 4, now, now);
        cache.insert("f", 5, later, now + Duration::from_secs(1));
        assert_eq!(cache.get("e", now + Duration::from_secs(1)), None);
        assert_eq!(cache.entries.len(), 3);
    }
}

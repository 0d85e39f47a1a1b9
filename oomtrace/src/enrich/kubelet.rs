//! Pod and container names from the kubelet's log directories, which every
//! Kubernetes node has and which need no API-server credentials.
//!
//! Layouts (kubernetes/kubernetes `pkg/kubelet/kuberuntime/helpers.go`:
//! `BuildPodLogsDirectory`, `BuildContainerLogsDirectory`,
//! `buildContainerLogsPath`, `logPathDelimiter = "_"`; and
//! `pkg/kubelet/kuberuntime/legacy.go`: `legacyLogSymlink`, `logSymlink`):
//!
//! ```text
//! /var/log/pods/<namespace>_<pod-name>_<pod-uid>/<container-name>/<restart-count>.log
//! /var/log/containers/<pod-name>_<namespace>_<container-name>-<container-id>.log   (symlink)
//! ```
//!
//! Splitting on `_` is safe: a namespace is a DNS-1123 label and a pod name a
//! DNS-1123 subdomain (lowercase alphanumerics, `-` and `.`), a container name
//! a DNS-1123 label, and a UID hex digits and dashes; none can contain `_`.
//!
//! The pod directory does not name container ids, so a container's name is
//! never guessed from it (not even when the pod has a single container
//! directory: that one could be an init container, or the pause container's
//! id could be the one asked about). The `/var/log/containers` symlinks do
//! carry the id, and outlive the runtime's task state while the kubelet keeps
//! the dead container, so they are the fallback for a container name.
//!
//! Each look-up reads one directory listing, capped at [`MAX_DIR_ENTRIES`].

use std::fs;
use std::path::Path;

/// The kubelet's pod log root, relative to the host root (the kubelet's
/// `podLogsDir`, default `/var/log/pods`).
pub const POD_LOGS_DIR: &str = "var/log/pods";

/// The kubelet's flat directory of per-container log symlinks, relative to the host root.
pub const CONTAINER_LOGS_DIR: &str = "var/log/containers";

/// At most this many directory entries are read per look-up. A node runs at
/// most a few hundred pods (kubelet `maxPods` defaults to 110), plus leftovers.
pub const MAX_DIR_ENTRIES: usize = 4096;

/// A pod's name and namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNames {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

/// What a `/var/log/containers` symlink name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLink {
    /// The pod the container belongs to.
    pub pod: PodNames,
    /// The container's name in the pod spec.
    pub container_name: String,
}

/// A name part: non-empty and without the `_` delimiter.
fn is_part(s: &str) -> bool {
    !s.is_empty() && !s.contains('_')
}

/// Split a pod log directory name `<namespace>_<pod-name>_<pod-uid>`.
/// Returns the names and the UID. The pre-1.14 layout (`/var/log/pods/<uid>`)
/// names nothing and gives `None`.
pub fn parse_pod_dir_name(dir_name: &str) -> Option<(PodNames, &str)> {
    let mut parts = dir_name.split('_');
    let (namespace, name, uid) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || ![namespace, name, uid].into_iter().all(is_part) {
        return None;
    }
    Some((
        PodNames {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        },
        uid,
    ))
}

/// Split a container log symlink name `<pod-name>_<namespace>_<container-name>-<id>.log`.
/// Returns the names and the container id. A name the kubelet truncated to
/// 255 bytes has lost (part of) its id and gives `None`.
pub fn parse_container_link_name(file_name: &str) -> Option<(ContainerLink, &str)> {
    let (front, id) = file_name.strip_suffix(".log")?.rsplit_once('-')?;
    if id.len() != 64 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut parts = front.split('_');
    let (pod, namespace, container) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || ![pod, namespace, container].into_iter().all(is_part) {
        return None;
    }
    let link = ContainerLink {
        pod: PodNames {
            namespace: namespace.to_owned(),
            name: pod.to_owned(),
        },
        container_name: container.to_owned(),
    };
    Some((link, id))
}

/// Find the first of at most [`MAX_DIR_ENTRIES`] entries of `dir` whose name
/// `parse` accepts. A missing or unreadable directory is a miss.
fn scan_dir<T>(dir: &Path, mut parse: impl FnMut(&str) -> Option<T>) -> Option<T> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            log::debug!("enrich: cannot list {}: {err}", dir.display());
            return None;
        }
    };
    entries
        .take(MAX_DIR_ENTRIES)
        .filter_map(Result::ok)
        .find_map(|entry| entry.file_name().to_str().and_then(&mut parse))
}

/// The names of the pod with this UID, from its `/var/log/pods` directory.
#[must_use]
pub fn find_pod(host_root: &Path, uid: &str) -> Option<PodNames> {
    let suffix = format!("_{uid}");
    scan_dir(&host_root.join(POD_LOGS_DIR), |name| {
        if !name.ends_with(&suffix) {
            return None;
        }
        parse_pod_dir_name(name)
            .filter(|(_, found)| *found == uid)
            .map(|(names, _)| names)
    })
}

/// The names of the container with this id, from its `/var/log/containers` symlink.
#[must_use]
pub fn find_container(host_root: &Path, container_id: &str) -> Option<ContainerLink> {
    let suffix = format!("-{container_id}.log");
    scan_dir(&host_root.join(CONTAINER_LOGS_DIR), |name| {
        if !name.ends_with(&suffix) {
            return None;
        }
        parse_container_link_name(name)
            .filter(|(_, id)| *id == container_id)
            .map(|(link, _)| link)
    })
}

/// Fixture trees in the kubelet's layout, shared with the enricher's tests.
#[cfg(test)]
pub(crate) mod fixture {
    use std::fs;
    use std::path::Path;

    /// `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`, as
    /// `BuildPodLogsDirectory` + `BuildContainerLogsDirectory` +
    /// `buildContainerLogsPath` (kubernetes/kubernetes
    /// `pkg/kubelet/kuberuntime/helpers.go`) lay it out.
    pub fn pod_logs(root: &Path, namespace: &str, pod: &str, uid: &str, containers: &[&str]) {
        let pod_dir = root
            .join(super::POD_LOGS_DIR)
            .join(format!("{namespace}_{pod}_{uid}"));
        for container in containers {
            let dir = pod_dir.join(container);
            fs::create_dir_all(&dir).unwrap();
            fs::write(
                dir.join("0.log"),
                b"2024-01-01T00:00:00.000000000Z stdout F hello\n",
            )
            .unwrap();
        }
        fs::create_dir_all(&pod_dir).unwrap();
    }

    /// `/var/log/containers/<pod>_<namespace>_<container>-<id>.log`, a symlink
    /// into the pod's log directory, as `legacyLogSymlink` (kubernetes/kubernetes
    /// `pkg/kubelet/kuberuntime/legacy.go`; `BuildPodFullName` is `<name>_<namespace>`)
    /// names it.
    pub fn container_link(
        root: &Path,
        namespace: &str,
        pod: &str,
        uid: &str,
        container: &str,
        id: &str,
    ) {
        let dir = root.join(super::CONTAINER_LOGS_DIR);
        fs::create_dir_all(&dir).unwrap();
        let target = Path::new("/var/log/pods")
            .join(format!("{namespace}_{pod}_{uid}"))
            .join(container)
            .join("0.log");
        std::os::unix::fs::symlink(
            target,
            dir.join(format!("{pod}_{namespace}_{container}-{id}.log")),
        )
        .unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b";
    const OTHER_UID: &str = "11111111-2222-4333-8444-555555555555";
    const ID: &str = "4c0d3a9be6f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b";

    #[test]
    fn pod_dir_names() {
        let dir = format!("kube-system_coredns-7db6d8ff4d-x2x9z_{UID}");
        let (names, uid) = parse_pod_dir_name(&dir).unwrap();
        assert_eq!(
            names,
            PodNames {
                namespace: "kube-system".into(),
                name: "coredns-7db6d8ff4d-x2x9z".into()
            }
        );
        assert_eq!(uid, UID);
        // dots are allowed in pod names
        let (names, _) = parse_pod_dir_name(&format!("web_api.v2-0_{UID}")).unwrap();
        assert_eq!(names.name, "api.v2-0");
        assert!(
            parse_pod_dir_name(UID).is_none(),
            "pre-1.14 layout names nothing"
        );
        assert!(parse_pod_dir_name(&format!("a_b_c_{UID}")).is_none());
        assert!(parse_pod_dir_name(&format!("_b_{UID}")).is_none());
    }

    #[test]
    fn container_link_names() {
        let file = format!("web-0_shop_nginx-sidecar-{ID}.log");
        let (link, id) = parse_container_link_name(&file).unwrap();
        assert_eq!(id, ID);
        assert_eq!(link.container_name, "nginx-sidecar");
        assert_eq!(
            link.pod,
            PodNames {
                namespace: "shop".into(),
                name: "web-0".into()
            }
        );
        assert!(
            parse_container_link_name(&format!("web-0_shop_nginx-{}.log", &ID[..40])).is_none(),
            "truncated"
        );
        assert!(parse_container_link_name(&format!("web-0_nginx-{ID}.log")).is_none());
        assert!(parse_container_link_name(&format!("web-0_shop_nginx-{ID}")).is_none());
    }

    #[test]
    fn finds_pod_in_fixture_tree() {
        let tmp = tempfile::tempdir().unwrap();
        fixture::pod_logs(tmp.path(), "shop", "web-0", UID, &["nginx", "init-config"]);
        fixture::pod_logs(
            tmp.path(),
            "kube-system",
            "coredns-7db6d8ff4d-x2x9z",
            OTHER_UID,
            &["coredns"],
        );
        // a pre-1.14 directory and a stray file do not confuse the scan
        fs::create_dir_all(tmp.path().join(POD_LOGS_DIR).join(UID)).unwrap();
        fs::write(tmp.path().join(POD_LOGS_DIR).join("README"), b"x").unwrap();
        assert_eq!(
            find_pod(tmp.path(), UID),
            Some(PodNames {
                namespace: "shop".into(),
                name: "web-0".into()
            })
        );
        assert_eq!(
            find_pod(tmp.path(), OTHER_UID).map(|p| p.namespace),
            Some("kube-system".into())
        );
        assert_eq!(
            find_pod(tmp.path(), "99999999-2222-4333-8444-555555555555"),
            None
        );
    }

    #[test]
    fn missing_tree_is_a_miss() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(find_pod(tmp.path(), UID), None);
        assert_eq!(find_container(tmp.path(), ID), None);
    }

    #[test]
    fn finds_container_link_in_fixture_tree() {
        let tmp = tempfile::tempdir().unwrap();
        fixture::pod_logs(tmp.path(), "shop", "web-0", UID, &["nginx"]);
        fixture::container_link(tmp.path(), "shop", "web-0", UID, "nginx", ID);
        let other = ID.replace('4', "5");
        fixture::container_link(tmp.path(), "shop", "web-0", UID, "other", &other);
        let link = find_container(tmp.path(), ID).unwrap();
        assert_eq!(link.container_name, "nginx");
        assert_eq!(
            link.pod,
            PodNames {
                namespace: "shop".into(),
                name: "web-0".into()
            }
        );
        assert_eq!(
            find_container(tmp.path(), &other).unwrap().container_name,
            "other"
        );
        assert_eq!(find_container(tmp.path(), &ID.replace('4', "6")), None);
    }

    #[test]
    fn single_container_dir_is_not_a_container_name() {
        // Only the pod is found from /var/log/pods; no API here returns a container name from it.
        let tmp = tempfile::tempdir().unwrap();
        fixture::pod_logs(tmp.path(), "shop", "web-0", UID, &["nginx"]);
        assert!(find_pod(tmp.path(), UID).is_some());
        assert_eq!(find_container(tmp.path(), ID), None);
    }
}

//! Table-driven parser of cgroup paths: which pod, container or systemd unit a
//! cgroup belongs to, from the path alone (a pure function, no I/O).
//!
//! The input is a path relative to the root of a cgroup hierarchy, as the
//! kernel prints it (`/proc/<pid>/cgroup`, `cgroup_path()`): the same string
//! for cgroup v1 (any controller's hierarchy) and v2, so the parser does not
//! need to know the version. What differs is the naming of the *driver* and the
//! *runtime*:
//!
//! | driver | runtime | container cgroup (under a pod) |
//! | --- | --- | --- |
//! | systemd | containerd | `kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_>.slice/cri-containerd-<id>.scope` |
//! | systemd | CRI-O | `…/kubepods-<qos>-pod<uid_>.slice/crio-<id>.scope` (monitor: `crio-conmon-<id>.scope`) |
//! | systemd | Docker (cri-dockerd) | `…/kubepods-<qos>-pod<uid_>.slice/docker-<id>.scope` |
//! | cgroupfs | containerd | `kubepods/<qos>/pod<uid>/<id>` |
//! | cgroupfs | CRI-O | `kubepods/<qos>/pod<uid>/crio-<id>` (monitor: `crio-conmon-<id>`) |
//!
//! Guaranteed pods sit directly under `kubepods` (no `QoS` level). The systemd
//! driver escapes the dashes of a pod UID as `_` (a `-` in a slice name means
//! nesting); [`parse`] turns them back into dashes. Anything may precede the
//! `kubepods` level (`/kubelet/kubepods/…` and `kubelet.slice/kubelet-kubepods.slice/…`
//! on kind and k3s, or the host's view of a kind node container), and the
//! innermost `kubepods` level is the one used.
//!
//! Outside Kubernetes: Docker (`/docker/<id>`, `…/docker-<id>.scope`), Podman
//! (`…/libpod-<id>.scope`, `/libpod_parent/…/libpod-<id>`, monitor
//! `libpod-conmon-<id>.scope`) and plain systemd units (`system.slice/nginx.service`,
//! user managers' units, session scopes).
//!
//! A container's cgroup may have sub-cgroups (crun's `container` leaf on
//! cgroup v2, or anything the workload creates inside a delegated tree); a path
//! below a recognised container cgroup is attributed to that container.
//!
//! Unknown shapes give an empty [`PathInfo`] rather than a guess: a malformed
//! id or UID, an unexpected level under a pod, a `QoS` slice that does not nest
//! in its parent's name.

use serde::Serialize;

/// Length of a container id (hex-encoded SHA-256) as every runtime here writes it.
const CONTAINER_ID_LEN: usize = 64;

/// A container runtime recognised from its cgroup naming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// containerd through its CRI plugin (`cri-containerd-<id>.scope`, bare `<id>`).
    Containerd,
    /// CRI-O (`crio-<id>.scope`, `crio-<id>`).
    CriO,
    /// Docker (`docker-<id>.scope`, `/docker/<id>`), including cri-dockerd pods.
    Docker,
    /// Podman (`libpod-<id>.scope`, `libpod-<id>`).
    Podman,
}

impl Runtime {
    /// The name used in the JSON output: `containerd`, `cri-o`, `docker` or `podman`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
        }
    }
}

/// A pod's Kubernetes `QoS` class, read from the cgroup level the kubelet put it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Qos {
    /// Directly under `kubepods` (no `QoS` level).
    Guaranteed,
    /// Under `kubepods/burstable` or `kubepods-burstable.slice`.
    Burstable,
    /// Under `kubepods/besteffort` or `kubepods-besteffort.slice`; serialised `besteffort`.
    BestEffort,
}

/// The cgroup driver whose naming the recognised pod or container level used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Driver {
    /// Plain directories (`kubepods/burstable/pod<uid>/<id>`, `/docker/<id>`).
    Cgroupfs,
    /// systemd units (`*.slice`, `*.scope`).
    Systemd,
}

/// A pod found in a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    /// The pod UID with dashes (a UUID, or 32 hex digits for a static pod).
    pub uid: String,
    /// The `QoS` class from the cgroup level.
    pub qos: Qos,
}

/// A container found in a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    /// The 64-hex-digit container id.
    pub id: String,
    /// The runtime the naming belongs to. A bare `<id>` under a cgroupfs pod is
    /// reported as containerd, though cri-dockerd names its containers the same
    /// way; the enricher corrects this from the runtimes' state directories.
    pub runtime: Runtime,
}

/// What a cgroup path says about the thing that owns it.
///
/// All fields empty means the path was not understood (or is the root).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathInfo {
    /// The Kubernetes pod, if the path is a pod cgroup or below one.
    pub pod: Option<PodRef>,
    /// The container, if the path is a container cgroup or below one. `None`
    /// for a runtime monitor (conmon) scope: see [`PathInfo::conmon`].
    pub container: Option<ContainerRef>,
    /// The path is a conmon scope (`crio-conmon-<id>`, `libpod-conmon-<id>.scope`).
    ///
    /// conmon is the runtime's monitor process for one container, not the
    /// container: its memory is not the container's and it is not killed with
    /// it. So the container id in its name is *not* claimed as
    /// [`PathInfo::container`]; the pod (if the scope sits in a pod) is still
    /// attributed, and a systemd scope's name goes to [`PathInfo::systemd_unit`]
    /// so that a reader can see that it was the monitor.
    pub conmon: bool,
    /// The driver of the recognised pod or container level.
    pub driver: Option<Driver>,
    /// The innermost systemd service or scope for paths that are not containers
    /// (`nginx.service`, `session-3.scope`), or a conmon scope's name.
    pub systemd_unit: Option<String>,
}

impl PathInfo {
    /// True when nothing was recognised.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pod.is_none()
            && self.container.is_none()
            && self.systemd_unit.is_none()
            && !self.conmon
    }
}

/// Whether a table row names the container itself or its monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Container,
    Conmon,
}

/// Where a table row may match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Directly below a pod cgroup of the row's driver.
    InPod,
    /// At any depth of a path that has no `kubepods` level.
    Anywhere,
    /// Directly below a component with this exact name.
    Parent(&'static str),
    /// Below a component with this exact name, at any depth.
    Ancestor(&'static str),
}

/// One cgroup naming: `<prefix><64 hex><suffix>`.
struct Shape {
    prefix: &'static str,
    suffix: &'static str,
    runtime: Runtime,
    role: Role,
    driver: Driver,
    place: Place,
}

const fn shape(
    prefix: &'static str,
    suffix: &'static str,
    runtime: Runtime,
    role: Role,
    driver: Driver,
    place: Place,
) -> Shape {
    Shape {
        prefix,
        suffix,
        runtime,
        role,
        driver,
        place,
    }
}

/// The container namings, one row per runtime × driver × place.
///
/// Sources: containerd's CRI plugin (`cri-containerd` systemd scope prefix,
/// bare id under cgroupfs), CRI-O `internal/config/cgmgr` (`crio-<id>.scope`,
/// `crio-conmon-<id>.scope`, cgroupfs `crio-<id>` / `crio-conmon-<id>`),
/// Docker's and Podman's cgroup drivers (`docker-<id>.scope`, `/docker/<id>`,
/// `libpod-<id>.scope`, `libpod-conmon-<id>.scope`, `/libpod_parent/libpod-<id>`).
const SHAPES: &[Shape] = &[
    // Inside a Kubernetes pod, systemd driver.
    shape(
        "cri-containerd-",
        ".scope",
        Runtime::Containerd,
        Role::Container,
        Driver::Systemd,
        Place::InPod,
    ),
    shape(
        "crio-conmon-",
        ".scope",
        Runtime::CriO,
        Role::Conmon,
        Driver::Systemd,
        Place::InPod,
    ),
    shape(
        "crio-",
        ".scope",
        Runtime::CriO,
        Role::Container,
        Driver::Systemd,
        Place::InPod,
    ),
    shape(
        "docker-",
        ".scope",
        Runtime::Docker,
        Role::Container,
        Driver::Systemd,
        Place::InPod,
    ),
    // Inside a Kubernetes pod, cgroupfs driver.
    shape(
        "crio-conmon-",
        "",
        Runtime::CriO,
        Role::Conmon,
        Driver::Cgroupfs,
        Place::InPod,
    ),
    shape(
        "crio-",
        "",
        Runtime::CriO,
        Role::Container,
        Driver::Cgroupfs,
        Place::InPod,
    ),
    shape(
        "",
        "",
        Runtime::Containerd,
        Role::Container,
        Driver::Cgroupfs,
        Place::InPod,
    ),
    // Outside Kubernetes.
    shape(
        "docker-",
        ".scope",
        Runtime::Docker,
        Role::Container,
        Driver::Systemd,
        Place::Anywhere,
    ),
    shape(
        "libpod-conmon-",
        ".scope",
        Runtime::Podman,
        Role::Conmon,
        Driver::Systemd,
        Place::Anywhere,
    ),
    shape(
        "libpod-",
        ".scope",
        Runtime::Podman,
        Role::Container,
        Driver::Systemd,
        Place::Anywhere,
    ),
    // CRI-O's conmon with `conmon_cgroup = "system.slice"` lives outside the pod.
    shape(
        "crio-conmon-",
        ".scope",
        Runtime::CriO,
        Role::Conmon,
        Driver::Systemd,
        Place::Anywhere,
    ),
    shape(
        "",
        "",
        Runtime::Docker,
        Role::Container,
        Driver::Cgroupfs,
        Place::Parent("docker"),
    ),
    shape(
        "libpod-",
        "",
        Runtime::Podman,
        Role::Container,
        Driver::Cgroupfs,
        Place::Ancestor("libpod_parent"),
    ),
];

/// A table row that matched one component.
struct Match {
    id: String,
    runtime: Runtime,
    role: Role,
    driver: Driver,
}

fn is_container_id(s: &str) -> bool {
    s.len() == CONTAINER_ID_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A pod UID as the kubelet writes it: a lowercase UUID (`8-4-4-4-12`), or
/// 32 hex digits for a static pod (the kubelet hashes the manifest).
fn is_pod_uid(s: &str) -> bool {
    if s.len() == 32 {
        return is_lower_hex(s);
    }
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| is_lower_hex(g))
}

/// Match one component against the rows of `SHAPES` allowed by `accept`.
fn match_component(component: &str, accept: impl Fn(&Shape) -> bool) -> Option<Match> {
    SHAPES.iter().filter(|s| accept(s)).find_map(|s| {
        let id = component.strip_prefix(s.prefix)?.strip_suffix(s.suffix)?;
        is_container_id(id).then(|| Match {
            id: id.to_owned(),
            runtime: s.runtime,
            role: s.role,
            driver: s.driver,
        })
    })
}

/// Parse a cgroup path. See the module documentation for the shapes.
#[must_use]
pub fn parse(path: &str) -> PathInfo {
    let components: Vec<&str> = path.trim().split('/').filter(|c| !c.is_empty()).collect();
    if let Some(anchor) = components.iter().rposition(|c| is_kubepods(c)) {
        // A path through a kubepods level is a Kubernetes path: either it
        // parses as one, or it is not understood. No fallback to other shapes.
        return parse_kube(&components, anchor).unwrap_or_default();
    }
    if let Some(info) = parse_plain_container(&components) {
        return info;
    }
    PathInfo {
        systemd_unit: systemd_unit(&components),
        ..PathInfo::default()
    }
}

fn is_kubepods(component: &str) -> bool {
    component == "kubepods"
        || component == "kubepods.slice"
        || component.ends_with("-kubepods.slice")
}

/// `components[anchor]` is the kubepods level.
fn parse_kube(components: &[&str], anchor: usize) -> Option<PathInfo> {
    let rest = &components[anchor + 1..];
    let (driver, pod, consumed) = if components[anchor] == "kubepods" {
        parse_cgroupfs_pod(rest)?
    } else {
        let stem = components[anchor].strip_suffix(".slice")?;
        parse_systemd_pod(stem, rest)?
    };
    let mut info = PathInfo {
        pod: Some(pod),
        driver: Some(driver),
        ..PathInfo::default()
    };
    let Some(child) = rest.get(consumed) else {
        return Some(info); // the pod cgroup itself (e.g. a pod-level OOM domain)
    };
    // Anything directly below the pod must be a known container naming of the
    // same driver; deeper levels are the container's own sub-cgroups.
    let m = match_component(child, |s| s.place == Place::InPod && s.driver == driver)?;
    match m.role {
        Role::Container => {
            info.container = Some(ContainerRef {
                id: m.id,
                runtime: m.runtime,
            });
        }
        Role::Conmon => {
            info.conmon = true;
            if driver == Driver::Systemd {
                info.systemd_unit = Some((*child).to_owned());
            }
        }
    }
    Some(info)
}

/// `kubepods/[burstable|besteffort/]pod<uid>`; returns how many components were used.
fn parse_cgroupfs_pod(rest: &[&str]) -> Option<(Driver, PodRef, usize)> {
    let (qos, pod_at) = match rest.first().copied()? {
        "burstable" => (Qos::Burstable, 1),
        "besteffort" => (Qos::BestEffort, 1),
        _ => (Qos::Guaranteed, 0),
    };
    let uid = rest.get(pod_at)?.strip_prefix("pod")?;
    is_pod_uid(uid).then(|| {
        (
            Driver::Cgroupfs,
            PodRef {
                uid: uid.to_owned(),
                qos,
            },
            pod_at + 1,
        )
    })
}

/// `<stem>.slice/[<stem>-<qos>.slice/]<stem>[-<qos>]-pod<uid_>.slice`: each
/// level's name must extend its parent's, as systemd slice nesting requires.
fn parse_systemd_pod(stem: &str, rest: &[&str]) -> Option<(Driver, PodRef, usize)> {
    let first = rest.first().copied()?;
    let qos_level = [
        ("burstable", Qos::Burstable),
        ("besteffort", Qos::BestEffort),
    ]
    .into_iter()
    .find(|(name, _)| first == format!("{stem}-{name}.slice"));
    let (qos, pod_stem, pod_at) = match qos_level {
        Some((name, qos)) => (qos, format!("{stem}-{name}"), 1),
        None => (Qos::Guaranteed, stem.to_owned(), 0),
    };
    let escaped = rest
        .get(pod_at)?
        .strip_prefix(pod_stem.as_str())?
        .strip_prefix("-pod")?
        .strip_suffix(".slice")?;
    if escaped.contains('-') {
        return None; // a dash would mean another slice level
    }
    let uid = escaped.replace('_', "-");
    is_pod_uid(&uid).then(|| (Driver::Systemd, PodRef { uid, qos }, pod_at + 1))
}

/// Docker and Podman outside Kubernetes: the innermost matching component
/// wins (a container nested in a container is the more precise answer), and
/// components below it are its sub-cgroups.
fn parse_plain_container(components: &[&str]) -> Option<PathInfo> {
    components
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, component)| {
            let m = match_component(component, |s| match s.place {
                Place::InPod => false,
                Place::Anywhere => true,
                Place::Parent(parent) => i > 0 && components[i - 1] == parent,
                Place::Ancestor(ancestor) => components[..i].contains(&ancestor),
            })?;
            let mut info = PathInfo {
                driver: Some(m.driver),
                ..PathInfo::default()
            };
            match m.role {
                Role::Container => {
                    info.container = Some(ContainerRef {
                        id: m.id,
                        runtime: m.runtime,
                    });
                }
                Role::Conmon => {
                    info.conmon = true;
                    info.systemd_unit = Some((*component).to_owned());
                }
            }
            Some(info)
        })
}

/// systemd's unit name alphabet (`unit_name_is_valid`): ASCII alphanumerics
/// and `:-_.\@`.
fn is_unit_name(component: &str, suffix: &str) -> bool {
    component.len() <= 255
        && component
            .strip_suffix(suffix)
            .is_some_and(|stem| !stem.is_empty())
        && component
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":-_.\\@".contains(&b))
}

/// A `.scope` named like a container runtime's (`docker-…`, `libpod-…`, …)
/// that did not match its row of `SHAPES` (wrong id length or digits).
fn looks_like_container_scope(component: &str) -> bool {
    component.strip_suffix(".scope").is_some()
        && SHAPES.iter().any(|s| {
            s.suffix == ".scope" && !s.prefix.is_empty() && component.starts_with(s.prefix)
        })
}

/// The innermost `.service` or `.scope` of a systemd-shaped path: from the
/// root, only slices and units, until a unit's delegated subtree (whose
/// components may be anything). A non-unit component before any unit means
/// the path is not systemd's.
fn systemd_unit(components: &[&str]) -> Option<String> {
    let mut unit: Option<&str> = None;
    for component in components {
        if looks_like_container_scope(component) {
            return None; // a container naming with a malformed id: not understood
        }
        if is_unit_name(component, ".service") || is_unit_name(component, ".scope") {
            unit = Some(component);
        } else if is_unit_name(component, ".slice") {
            // slices nest, also inside a user manager (user@1000.service/app.slice)
        } else if unit.is_some() {
            break; // a unit's own sub-cgroups
        } else {
            return None;
        }
    }
    unit.map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4c0d3a9be6f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b";
    const ID2: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0";
    const UID: &str = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b";
    const UID_: &str = "6f1e2d3c_4b5a_4978_8a6b_5c4d3e2f1a0b";
    /// A static pod's UID: the kubelet's hash of the manifest.
    const STATIC_UID: &str = "0b5a3c9e2f7d41e68a1c3b5d7f9e2a4c";

    /// Expected outcome, compactly.
    #[derive(Debug, Clone, Copy)]
    struct Want {
        pod: Option<(&'static str, Qos)>,
        container: Option<(&'static str, Runtime)>,
        conmon: bool,
        unit: Option<&'static str>,
    }

    const NOTHING: Want = Want {
        pod: None,
        container: None,
        conmon: false,
        unit: None,
    };

    fn pod_ctr(uid: &'static str, qos: Qos, id: &'static str, rt: Runtime) -> Want {
        Want {
            pod: Some((uid, qos)),
            container: Some((id, rt)),
            ..NOTHING
        }
    }
    fn pod_only(uid: &'static str, qos: Qos) -> Want {
        Want {
            pod: Some((uid, qos)),
            ..NOTHING
        }
    }
    fn ctr(id: &'static str, rt: Runtime) -> Want {
        Want {
            container: Some((id, rt)),
            ..NOTHING
        }
    }
    fn unit(name: &'static str) -> Want {
        Want {
            unit: Some(name),
            ..NOTHING
        }
    }

    fn check(case: &str, path: &str, want: Want) {
        let got = parse(path);
        let got_pod = got.pod.as_ref().map(|p| (p.uid.as_str(), p.qos));
        let got_ctr = got.container.as_ref().map(|c| (c.id.as_str(), c.runtime));
        assert_eq!(got_pod, want.pod, "{case}: pod of {path}");
        assert_eq!(got_ctr, want.container, "{case}: container of {path}");
        assert_eq!(got.conmon, want.conmon, "{case}: conmon flag of {path}");
        assert_eq!(
            got.systemd_unit.as_deref(),
            want.unit,
            "{case}: systemd unit of {path}"
        );
    }

    /// Runtime × driver × cgroup version. v1 and v2 give the same relative
    /// path for the same driver; the rows name the version where the shape
    /// was taken from.
    #[test]
    #[allow(clippy::too_many_lines)]
    fn table_of_shapes() {
        use Qos::{BestEffort, Burstable, Guaranteed};
        use Runtime::{Containerd, CriO, Docker, Podman};
        let conmon_in_pod = |unit: Option<&'static str>| Want {
            pod: Some((UID, Burstable)),
            conmon: true,
            unit,
            ..NOTHING
        };
        let leaked = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let cases: Vec<(&str, String, Want)> = vec![
            // containerd, systemd driver (v2: kubeadm/GKE/EKS defaults; v1 the same names)
            (
                "containerd systemd v2 burstable",
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope"
                ),
                pod_ctr(UID, Burstable, ID, Containerd),
            ),
            (
                "containerd systemd v2 besteffort",
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope"
                ),
                pod_ctr(UID, BestEffort, ID, Containerd),
            ),
            (
                "containerd systemd v1 guaranteed (no qos level)",
                format!("/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope"),
                pod_ctr(UID, Guaranteed, ID, Containerd),
            ),
            (
                "containerd systemd: pause/sandbox container is a container too",
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID2}.scope"
                ),
                pod_ctr(UID, BestEffort, ID2, Containerd),
            ),
            // containerd, cgroupfs driver
            (
                "containerd cgroupfs v1 burstable",
                format!("/kubepods/burstable/pod{UID}/{ID}"),
                pod_ctr(UID, Burstable, ID, Containerd),
            ),
            (
                "containerd cgroupfs v1 guaranteed",
                format!("/kubepods/pod{UID}/{ID}"),
                pod_ctr(UID, Guaranteed, ID, Containerd),
            ),
            (
                "containerd cgroupfs v2 besteffort (k3s)",
                format!("/kubepods/besteffort/pod{UID}/{ID}"),
                pod_ctr(UID, BestEffort, ID, Containerd),
            ),
            (
                "static pod (32-hex uid) cgroupfs",
                format!("/kubepods/burstable/pod{STATIC_UID}/{ID}"),
                pod_ctr(STATIC_UID, Burstable, ID, Containerd),
            ),
            (
                "static pod (32-hex uid) systemd",
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{STATIC_UID}.slice/cri-containerd-{ID}.scope"
                ),
                pod_ctr(STATIC_UID, Burstable, ID, Containerd),
            ),
            // CRI-O
            (
                "cri-o systemd v2",
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-{ID}.scope"
                ),
                pod_ctr(UID, Burstable, ID, CriO),
            ),
            (
                "cri-o systemd v2 with crun's `container` leaf",
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-{ID}.scope/container"
                ),
                pod_ctr(UID, Burstable, ID, CriO),
            ),
            (
                "cri-o systemd conmon scope: pod yes, container no",
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-conmon-{ID}.scope"
                ),
                conmon_in_pod(Some(leaked(format!("crio-conmon-{ID}.scope")))),
            ),
            (
                "cri-o cgroupfs v1",
                format!("/kubepods/burstable/pod{UID}/crio-{ID}"),
                pod_ctr(UID, Burstable, ID, CriO),
            ),
            (
                "cri-o cgroupfs conmon",
                format!("/kubepods/burstable/pod{UID}/crio-conmon-{ID}"),
                conmon_in_pod(None),
            ),
            (
                "cri-o conmon in system.slice (conmon_cgroup=system.slice)",
                format!("/system.slice/crio-conmon-{ID}.scope"),
                Want {
                    conmon: true,
                    unit: Some(leaked(format!("crio-conmon-{ID}.scope"))),
                    ..NOTHING
                },
            ),
            // Docker
            (
                "cri-dockerd systemd in a pod",
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/docker-{ID}.scope"
                ),
                pod_ctr(UID, Burstable, ID, Docker),
            ),
            (
                "docker cgroupfs v1",
                format!("/docker/{ID}"),
                ctr(ID, Docker),
            ),
            (
                "docker systemd v2",
                format!("/system.slice/docker-{ID}.scope"),
                ctr(ID, Docker),
            ),
            (
                "docker systemd v2, a sub-cgroup",
                format!("/system.slice/docker-{ID}.scope/init.scope"),
                ctr(ID, Docker),
            ),
            // Podman
            (
                "podman rootful systemd",
                format!("/machine.slice/libpod-{ID}.scope"),
                ctr(ID, Podman),
            ),
            (
                "podman rootful crun leaf",
                format!("/machine.slice/libpod-{ID}.scope/container"),
                ctr(ID, Podman),
            ),
            (
                "podman rootless",
                format!(
                    "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"
                ),
                ctr(ID, Podman),
            ),
            (
                "podman pod member",
                format!("/machine.slice/machine-libpod_pod_{ID2}.slice/libpod-{ID}.scope"),
                ctr(ID, Podman),
            ),
            (
                "podman cgroupfs v1",
                format!("/libpod_parent/libpod-{ID}"),
                ctr(ID, Podman),
            ),
            (
                "podman conmon scope",
                format!("/machine.slice/libpod-conmon-{ID}.scope"),
                Want {
                    conmon: true,
                    unit: Some(leaked(format!("libpod-conmon-{ID}.scope"))),
                    ..NOTHING
                },
            ),
            // Prefixes before kubepods (kind, k3s, nested)
            (
                "kind systemd (kubelet cgroup root /kubelet)",
                format!(
                    "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope"
                ),
                pod_ctr(UID, Burstable, ID, Containerd),
            ),
            (
                "kind node seen from the host: innermost kubepods wins",
                format!(
                    "/system.slice/docker-{ID2}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope"
                ),
                pod_ctr(UID, Guaranteed, ID, Containerd),
            ),
            (
                "kind/k3s cgroupfs under /kubelet",
                format!("/kubelet/kubepods/besteffort/pod{UID}/{ID}"),
                pod_ctr(UID, BestEffort, ID, Containerd),
            ),
            // Pod-level cgroups (OOM domain of a pod-level limit)
            (
                "pod cgroup systemd",
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice"
                ),
                pod_only(UID, Burstable),
            ),
            (
                "pod cgroup cgroupfs guaranteed",
                format!("/kubepods/pod{UID}/"),
                pod_only(UID, Guaranteed),
            ),
            // Plain systemd units
            (
                "system service",
                "/system.slice/nginx.service".into(),
                unit("nginx.service"),
            ),
            (
                "user manager's service: innermost .service",
                "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service".into(),
                unit("foo.service"),
            ),
            (
                "session scope",
                "/user.slice/user-1000.slice/session-3.scope".into(),
                unit("session-3.scope"),
            ),
            (
                "delegated service subtree",
                "/system.slice/containerd.service/sub/leaf".into(),
                unit("containerd.service"),
            ),
            (
                "escaped unit name",
                "/system.slice/system-getty.slice/getty@tty1.service".into(),
                unit("getty@tty1.service"),
            ),
            ("pid 1", "/init.scope".into(), unit("init.scope")),
            // Must yield nothing
            ("root", "/".into(), NOTHING),
            ("empty", String::new(), NOTHING),
            ("unknown tree", "/foo/bar".into(), NOTHING),
            ("kubepods, not a pod", "/kubepods/notapod/x".into(), NOTHING),
            ("kubepods level only", "/kubepods".into(), NOTHING),
            (
                "qos level only",
                "/kubepods.slice/kubepods-burstable.slice".into(),
                NOTHING,
            ),
            (
                "63-digit id under a pod",
                format!("/kubepods/burstable/pod{UID}/{}", &ID[1..]),
                NOTHING,
            ),
            (
                "63-digit docker id",
                format!("/docker/{}", &ID[1..]),
                NOTHING,
            ),
            (
                "65-digit id",
                format!("/system.slice/docker-{ID}0.scope"),
                NOTHING,
            ),
            (
                "63-digit podman id",
                format!("/machine.slice/libpod-{}.scope", &ID[1..]),
                NOTHING,
            ),
            (
                "short conmon id",
                "/system.slice/crio-conmon-abc.scope".into(),
                NOTHING,
            ),
            (
                "docker.service is a unit",
                "/system.slice/docker.service".into(),
                unit("docker.service"),
            ),
            (
                "uppercase id",
                format!("/docker/{}", ID.to_uppercase()),
                NOTHING,
            ),
            (
                "malformed uid",
                format!("/kubepods/burstable/pod{}/{ID}", &UID[..35]),
                NOTHING,
            ),
            (
                "systemd naming under a cgroupfs pod",
                format!("/kubepods/burstable/pod{UID}/cri-containerd-{ID}.scope"),
                NOTHING,
            ),
            (
                "cgroupfs naming under a systemd pod",
                format!("/kubepods.slice/kubepods-pod{UID_}.slice/{ID}"),
                NOTHING,
            ),
            (
                "pod slice does not nest in its qos slice",
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-besteffort-pod{UID_}.slice/crio-{ID}.scope"
                ),
                NOTHING,
            ),
            (
                "dashed uid in a systemd pod slice",
                format!("/kubepods.slice/kubepods-pod{UID}.slice/cri-containerd-{ID}.scope"),
                NOTHING,
            ),
            (
                "unknown level under a pod",
                format!("/kubepods/pod{UID}/weird/{ID}"),
                NOTHING,
            ),
            (
                "libpod without scope or libpod_parent",
                format!("/machine.slice/libpod-{ID}"),
                NOTHING,
            ),
            (
                "bare id outside docker/kubepods",
                format!("/other/{ID}"),
                NOTHING,
            ),
            ("not a systemd tree", "/foo/bar.service".into(), NOTHING),
            ("slice only", "/system.slice".into(), NOTHING),
        ];
        assert!(cases.len() >= 20);
        for (case, path, want) in &cases {
            check(case, path, *want);
        }
    }

    #[test]
    fn systemd_uid_is_normalised_to_dashes() {
        let info = parse(&format!("/kubepods.slice/kubepods-pod{UID_}.slice"));
        assert_eq!(info.pod.map(|p| p.uid), Some(UID.to_owned()));
        assert_eq!(info.driver, Some(Driver::Systemd));
    }

    #[test]
    fn whitespace_and_trailing_slashes_are_ignored() {
        let info = parse(&format!(" /docker/{ID}/ \n"));
        assert_eq!(info.container.map(|c| c.id), Some(ID.to_owned()));
    }

    #[test]
    fn runtime_names_and_qos_json() {
        assert_eq!(Runtime::Containerd.as_str(), "containerd");
        assert_eq!(Runtime::CriO.as_str(), "cri-o");
        assert_eq!(Runtime::Docker.as_str(), "docker");
        assert_eq!(Runtime::Podman.as_str(), "podman");
        let json =
            serde_json::to_string(&[Qos::Guaranteed, Qos::Burstable, Qos::BestEffort]).unwrap();
        assert_eq!(json, r#"["guaranteed","burstable","besteffort"]"#);
    }

    #[test]
    fn empty_info_is_empty() {
        assert!(parse("/").is_empty());
        assert!(!parse("/init.scope").is_empty());
    }
}

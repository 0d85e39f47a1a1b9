//! Kernel struct member offsets for the eBPF programs, resolved from the running kernel's BTF.
//!
//! The one place that answers "what do we read in the kernel, at which offset". Every member is
//! looked up by name (inside anonymous nested structs too) and checked for the size the programs
//! read; a member that is missing or has another size becomes [`ABSENT`], so the fields that
//! depend on it are reported as absent, never wrong. Known renames and layout changes:
//! - `kernfs_node.parent` → `__parent` (6.15);
//! - `mm_struct.rss_stat`: `struct mm_rss_stat { atomic_long_t count[NR_MM_COUNTERS]; }` before
//!   6.2, `struct percpu_counter rss_stat[NR_MM_COUNTERS]` since (value in `.count`);
//! - `memory_cgrp_id` depends on the kernel config: read from `enum cgroup_subsys_id`;
//! - the MM_* counter indexes come from the (anonymous) enum, not from memory;
//! - `pid.numbers` is `struct upid numbers[1]` on older kernels and a flexible array on recent ones:
//!   its size is not checked, the stride is `sizeof(struct upid)`.

use oomtrace_common::{ABSENT, KernelOffsets};

use super::btf::Btf;

/// The resolved offsets, and what could not be resolved (for `oomtrace check` and the logs).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub offsets: KernelOffsets,
    pub missing: Vec<String>,
    /// Every answer BTF gave on the way, in the order asked (the tests check each one against
    /// an independent reader of the same BTF).
    pub lookups: Vec<Lookup>,
}

/// One question asked of the kernel's BTF, and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// `strukt.member` is at `offset` bytes and (when asked) `size` bytes long.
    Member {
        strukt: &'static str,
        member: &'static str,
        offset: u32,
        size: Option<u32>,
    },
    /// `struct name` is `size` bytes.
    StructSize { name: &'static str, size: u32 },
    /// The enumerator `name` (of `enum_name`, or of any enum when `None`) has `value`.
    Enumerator {
        enum_name: Option<&'static str>,
        name: &'static str,
        value: i64,
    },
}

struct Resolver<'a> {
    btf: &'a Btf,
    missing: Vec<String>,
    lookups: Vec<Lookup>,
}

impl Resolver<'_> {
    /// Offset of `s.m`, whose type must be `size` bytes (None: any size).
    fn member(&mut self, s: &'static str, m: &'static str, size: Option<u32>) -> u32 {
        match self.btf.struct_member(s, m) {
            Ok(Some(mem))
                if mem.bitfield_size == 0 && size.is_none_or(|want| mem.size == Some(want)) =>
            {
                self.lookups.push(Lookup::Member {
                    strukt: s,
                    member: m,
                    offset: mem.offset_bytes,
                    size,
                });
                mem.offset_bytes
            }
            Ok(Some(mem)) => {
                self.missing
                    .push(format!("{s}.{m}: size {:?}, expected {size:?}", mem.size));
                ABSENT
            }
            Ok(None) => {
                self.missing
                    .push(format!("{s}.{m}: not in this kernel's BTF"));
                ABSENT
            }
            Err(e) => {
                self.missing.push(format!("{s}.{m}: {e}"));
                ABSENT
            }
        }
    }

    /// `sizeof(struct s)`.
    fn size_of(&mut self, s: &str) -> u32 {
        self.btf.struct_size(s).unwrap_or_else(|| {
            self.missing
                .push(format!("struct {s}: not in this kernel's BTF"));
            ABSENT
        })
    }

    /// The first of several names a member has had.
    fn member_any(&mut self, s: &'static str, names: &[&'static str], size: Option<u32>) -> u32 {
        for n in names {
            if matches!(self.btf.struct_member(s, n), Ok(Some(_))) {
                return self.member(s, n, size);
            }
        }
        self.missing.push(format!(
            "{s}.{{{}}}: none in this kernel's BTF",
            names.join(",")
        ));
        ABSENT
    }

    fn enumerator(&mut self, name: &'static str) -> u32 {
        match self.btf.enumerator_value(name) {
            Ok(Some(v)) => {
                self.lookups.push(Lookup::Enumerator {
                    enum_name: None,
                    name,
                    value: v,
                });
                u32::try_from(v).unwrap_or(ABSENT)
            }
            Ok(None) => {
                self.missing
                    .push(format!("enumerator {name}: not in this kernel's BTF"));
                ABSENT
            }
            Err(e) => {
                self.missing.push(format!("enumerator {name}: {e}"));
                ABSENT
            }
        }
    }

    /// `(offset of the first counter, stride, offset of the value inside a counter)`.
    fn rss_stat(&mut self) -> (u32, u32, u32) {
        let Ok(Some(m)) = self.btf.struct_member("mm_struct", "rss_stat") else {
            self.missing
                .push("mm_struct.rss_stat: not in this kernel's BTF".into());
            return (ABSENT, ABSENT, ABSENT);
        };
        self.lookups.push(Lookup::Member {
            strukt: "mm_struct",
            member: "rss_stat",
            offset: m.offset_bytes,
            size: None,
        });
        if self
            .btf
            .is_array_of_struct(m.type_id, "percpu_counter")
            .unwrap_or(false)
        {
            // 6.2+: struct percpu_counter rss_stat[NR_MM_COUNTERS]; read .count (s64).
            let stride = self.struct_size("percpu_counter");
            let count = self.member("percpu_counter", "count", Some(8));
            return (m.offset_bytes, stride, count);
        }
        if self.btf.type_name(m.type_id) == Some("mm_rss_stat") {
            // Before 6.2: struct mm_rss_stat { atomic_long_t count[NR_MM_COUNTERS]; }.
            let inner = self.member("mm_rss_stat", "count", None);
            if inner != ABSENT {
                return (m.offset_bytes + inner, 8, 0);
            }
        }
        self.missing
            .push("mm_struct.rss_stat: unknown layout".into());
        (ABSENT, ABSENT, ABSENT)
    }

    fn struct_size(&mut self, name: &'static str) -> u32 {
        if let Some(size) = self.btf.struct_size(name) {
            self.lookups.push(Lookup::StructSize { name, size });
            size
        } else {
            self.missing
                .push(format!("struct {name}: not in this kernel's BTF"));
            ABSENT
        }
    }

    fn enum_value(&mut self, enum_name: &'static str, name: &'static str) -> u32 {
        let Some(value) = self.btf.enum_value(enum_name, name) else {
            self.missing
                .push(format!("enum {enum_name}.{name}: not in this kernel's BTF"));
            return ABSENT;
        };
        self.lookups.push(Lookup::Enumerator {
            enum_name: Some(enum_name),
            name,
            value,
        });
        u32::try_from(value).unwrap_or(ABSENT)
    }
}

/// Resolves every offset the programs use. `memory_on_v2`: report the v2 cgroup of a task.
pub fn resolve(btf: &Btf, memory_on_v2: bool) -> Resolved {
    let mut r = Resolver {
        btf,
        missing: Vec::new(),
        lookups: Vec::new(),
    };
    let (mm_rss_stat, rss_stride, rss_value) = r.rss_stat();
    let memory_cgrp_id = r.enum_value("cgroup_subsys_id", "memory_cgrp_id");
    let offsets = KernelOffsets {
        task_pid: r.member("task_struct", "pid", Some(4)),
        task_tgid: r.member("task_struct", "tgid", Some(4)),
        task_comm: r.member("task_struct", "comm", Some(16)),
        task_flags: r.member("task_struct", "flags", Some(4)),
        task_mm: r.member("task_struct", "mm", Some(8)),
        task_signal: r.member("task_struct", "signal", Some(8)),
        task_real_cred: r.member("task_struct", "real_cred", Some(8)),
        task_cgroups: r.member("task_struct", "cgroups", Some(8)),
        task_thread_pid: r.member("task_struct", "thread_pid", Some(8)),
        pid_level: r.member("pid", "level", Some(4)),
        // A flexible array (`struct upid numbers[]`) on recent kernels, `numbers[1]` on older
        // ones: its size is not checked.
        pid_numbers: r.member("pid", "numbers", None),
        upid_size: r.size_of("upid"),
        upid_nr: r.member("upid", "nr", Some(4)),
        signal_oom_score_adj: r.member("signal_struct", "oom_score_adj", Some(2)),
        cred_uid: r.member("cred", "uid", Some(4)),
        mm_total_vm: r.member("mm_struct", "total_vm", Some(8)),
        mm_pgtables_bytes: r.member("mm_struct", "pgtables_bytes", Some(8)),
        mm_rss_stat,
        rss_stride,
        rss_value,
        rss_file_idx: r.enumerator("MM_FILEPAGES"),
        rss_anon_idx: r.enumerator("MM_ANONPAGES"),
        rss_swap_idx: r.enumerator("MM_SWAPENTS"),
        rss_shmem_idx: r.enumerator("MM_SHMEMPAGES"),
        css_set_subsys: r.member("css_set", "subsys", None),
        css_set_dfl_cgrp: r.member("css_set", "dfl_cgrp", Some(8)),
        css_cgroup: r.member("cgroup_subsys_state", "cgroup", Some(8)),
        css_parent: r.member("cgroup_subsys_state", "parent", Some(8)),
        cgroup_kn: r.member("cgroup", "kn", Some(8)),
        kn_name: r.member("kernfs_node", "name", Some(8)),
        kn_id: r.member("kernfs_node", "id", Some(8)),
        kn_parent: r.member_any("kernfs_node", &["__parent", "parent"], Some(8)),
        memcg_css: r.member("mem_cgroup", "css", None),
        memcg_memory: r.member("mem_cgroup", "memory", None),
        memcg_oom_group: r.member("mem_cgroup", "oom_group", Some(1)),
        page_counter_usage: r.member("page_counter", "usage", Some(8)),
        page_counter_max: r.member("page_counter", "max", Some(8)),
        oc_memcg: r.member("oom_control", "memcg", Some(8)),
        oc_gfp_mask: r.member("oom_control", "gfp_mask", Some(4)),
        oc_order: r.member("oom_control", "order", Some(4)),
        oc_totalpages: r.member("oom_control", "totalpages", Some(8)),
        oc_chosen: r.member("oom_control", "chosen", Some(8)),
        oc_chosen_points: r.member("oom_control", "chosen_points", Some(8)),
        oc_constraint: r.member("oom_control", "constraint", Some(4)),
        memory_cgrp_id,
        page_shift: page_size().trailing_zeros(),
        use_dfl_cgrp: u32::from(memory_on_v2),
    };
    Resolved {
        offsets,
        missing: r.missing,
        lookups: r.lookups,
    }
}

/// The kernel's page size.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(v).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_btf() -> Option<Btf> {
        let p = std::path::Path::new("/sys/kernel/btf/vmlinux");
        if !crate::testutil::require("/sys/kernel/btf/vmlinux", p.exists()) {
            return None;
        }
        Some(Btf::from_file(p).expect("host BTF parses"))
    }

    #[test]
    fn host_kernel_resolves_everything_we_read() {
        let Some(btf) = host_btf() else { return };
        let r = resolve(&btf, false);
        assert!(
            r.missing.is_empty(),
            "unresolved on this kernel: {:?}",
            r.missing
        );
        let o = r.offsets;
        // Cross-checks that hold on any kernel: the counters are consecutive, the indexes are
        // the four MM_* values, kernfs parent exists under one of its names.
        assert_eq!(
            [
                o.rss_file_idx,
                o.rss_anon_idx,
                o.rss_swap_idx,
                o.rss_shmem_idx
            ],
            [0, 1, 2, 3],
            "MM_FILEPAGES..MM_SHMEMPAGES"
        );
        assert_ne!(o.kn_parent, ABSENT);
        assert_ne!(o.memory_cgrp_id, ABSENT);
        // struct upid { int nr; struct pid_namespace *ns; }: nr first, a pointer after it.
        assert_eq!(o.upid_nr, 0, "upid.nr");
        assert!(o.upid_size >= 12, "sizeof(struct upid) {}", o.upid_size);
        assert_eq!(o.page_shift, 12);
        assert_eq!(o.use_dfl_cgrp, 0);
    }

    /// Every answer the resolver took from BTF equals bpftool's reading of the same BTF, on
    /// whatever kernel build runs the test.
    #[test]
    fn every_lookup_agrees_with_bpftool() {
        let Some(btf) = host_btf() else { return };
        let Some(oracle) = super::super::bpftool::Oracle::host() else {
            return;
        };
        let r = resolve(&btf, false);
        assert!(r.missing.is_empty(), "unresolved: {:?}", r.missing);
        // Each KernelOffsets field that comes from BTF was recorded as one lookup.
        assert!(r.lookups.len() >= 40, "{} lookups", r.lookups.len());
        for l in &r.lookups {
            match *l {
                Lookup::Member {
                    strukt,
                    member,
                    offset,
                    size,
                } => {
                    let want = oracle
                        .member(strukt, member)
                        .unwrap_or_else(|| panic!("bpftool has no {strukt}.{member}"));
                    assert_eq!(
                        u64::from(offset),
                        want.offset_bytes,
                        "offset of {strukt}.{member}"
                    );
                    assert_eq!(want.bitfield_size, 0, "{strukt}.{member} is a bitfield");
                    if let Some(size) = size {
                        assert_eq!(
                            Some(u64::from(size)),
                            want.size,
                            "size of {strukt}.{member}"
                        );
                    }
                }
                Lookup::StructSize { name, size } => {
                    assert_eq!(
                        Some(u64::from(size)),
                        oracle.struct_size(name),
                        "size of struct {name}"
                    );
                }
                Lookup::Enumerator {
                    enum_name,
                    name,
                    value,
                } => {
                    let want = match enum_name {
                        Some(e) => oracle.enum_value(e, name),
                        None => oracle.enumerator(name),
                    };
                    assert_eq!(Some(value), want, "enumerator {name}");
                }
            }
        }
        // The derived values: the rss counters' layout as bpftool sees it.
        let o = r.offsets;
        let rss = oracle.member("mm_struct", "rss_stat").unwrap();
        if let Some((elem, n)) = oracle.array_of("mm_struct", "rss_stat") {
            // 6.2+: struct percpu_counter rss_stat[NR_MM_COUNTERS].
            assert_eq!(elem, "percpu_counter");
            assert_eq!(Some(n), rss.size.map(|s| s / u64::from(o.rss_stride)));
            assert_eq!(u64::from(o.mm_rss_stat), rss.offset_bytes);
            assert_eq!(
                u64::from(o.rss_value),
                oracle
                    .member("percpu_counter", "count")
                    .unwrap()
                    .offset_bytes
            );
        } else {
            // Before 6.2: struct mm_rss_stat { atomic_long_t count[]; }.
            let count = oracle.member("mm_rss_stat", "count").unwrap();
            assert_eq!(
                u64::from(o.mm_rss_stat),
                rss.offset_bytes + count.offset_bytes
            );
            assert_eq!((o.rss_stride, o.rss_value), (8, 0));
        }
        assert_eq!(
            u64::from(o.page_shift),
            u64::from(page_size().trailing_zeros())
        );
    }

    #[test]
    fn a_missing_member_is_absent_not_zero() {
        let Some(btf) = host_btf() else { return };
        let mut r = Resolver {
            btf: &btf,
            missing: Vec::new(),
            lookups: Vec::new(),
        };
        assert_eq!(r.member("task_struct", "no_such_member", None), ABSENT);
        assert_eq!(r.member("no_such_struct", "pid", None), ABSENT);
        // Wrong size is refused too: pid is 4 bytes.
        assert_eq!(r.member("task_struct", "pid", Some(8)), ABSENT);
        assert_eq!(
            r.member_any("kernfs_node", &["no_parent", "neither"], Some(8)),
            ABSENT
        );
        assert_eq!(r.missing.len(), 4);
        assert!(r.lookups.is_empty(), "a refused member is no answer");
    }
}

//! Test oracle: the running kernel's BTF as **bpftool** reads it
//! (`bpftool -j btf dump file /sys/kernel/btf/vmlinux`), independently of [`super::btf`].
//!
//! The tests about the running kernel ask this oracle for the expected answer at run time, so
//! they hold on every kernel build (the hosts get new builds without notice) and fail when
//! oomtrace's own reader is wrong. Only the JSON bpftool prints is interpreted here: member
//! offsets (summed through anonymous members), type sizes, enumerators and function names.

use std::{collections::HashMap, process::Command, sync::OnceLock};

use serde::Deserialize;

const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, Deserialize)]
struct Dump {
    types: Vec<Ty>,
}

#[derive(Debug, Deserialize)]
struct Ty {
    id: u32,
    kind: String,
    name: String,
    size: Option<u64>,
    type_id: Option<u32>,
    nr_elems: Option<u64>,
    #[serde(default)]
    members: Vec<TyMember>,
    #[serde(default)]
    values: Vec<TyValue>,
}

#[derive(Debug, Deserialize)]
struct TyMember {
    name: String,
    type_id: u32,
    bits_offset: u64,
    bitfield_size: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct TyValue {
    name: String,
    val: serde_json::Number,
}

/// A member as bpftool sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OracleMember {
    pub offset_bytes: u64,
    pub bit_offset: u64,
    pub bitfield_size: u32,
    /// Size in bytes of the member's type, through typedefs, qualifiers and arrays.
    pub size: Option<u64>,
    /// bpftool's id of the member's type (as written, before typedefs are stripped).
    pub type_id: u32,
}

pub struct Oracle {
    types: Vec<Ty>,
    /// Index in `types` by id.
    by_id: HashMap<u32, usize>,
}

impl Oracle {
    /// Runs bpftool on the host's BTF.
    ///
    /// # Panics
    /// When bpftool fails or prints something that is not its JSON dump.
    fn load() -> Self {
        let out = Command::new("bpftool")
            .args(["-j", "btf", "dump", "file", VMLINUX])
            .output()
            .unwrap_or_else(|e| {
                panic!("running bpftool (installed by `scripts/setup.sh --test`): {e}")
            });
        assert!(
            out.status.success(),
            "bpftool btf dump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dump: Dump = serde_json::from_slice(&out.stdout).expect("bpftool's JSON dump parses");
        let by_id = dump
            .types
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id, i))
            .collect();
        Self {
            types: dump.types,
            by_id,
        }
    }

    /// The oracle for this host, or `None` (skipped with a message) when the host has no BTF
    /// or no bpftool; under `CI=true` either is a failure.
    pub fn host() -> Option<&'static Self> {
        static ORACLE: OnceLock<Option<Oracle>> = OnceLock::new();
        ORACLE
            .get_or_init(|| {
                let have_btf = std::path::Path::new(VMLINUX).exists();
                let have_bpftool = Command::new("bpftool")
                    .arg("version")
                    .output()
                    .is_ok_and(|o| o.status.success());
                (crate::testutil::require(VMLINUX, have_btf)
                    && crate::testutil::require(
                        "bpftool (scripts/setup.sh --test installs it)",
                        have_bpftool,
                    ))
                .then(Self::load)
            })
            .as_ref()
    }

    fn ty(&self, id: u32) -> Option<&Ty> {
        self.by_id.get(&id).map(|&i| &self.types[i])
    }

    /// Number of type ids, counting `void` (id 0), as `Btf::type_count` does.
    pub fn type_count(&self) -> usize {
        self.types.len() + 1
    }

    fn named(&self, name: &str, kinds: &[&str]) -> Option<&Ty> {
        self.types
            .iter()
            .find(|t| t.name == name && kinds.contains(&t.kind.as_str()))
    }

    /// Size in bytes of type `id`.
    pub fn type_size(&self, id: u32) -> Option<u64> {
        let mut t = self.ty(id)?;
        for _ in 0..64 {
            match t.kind.as_str() {
                "INT" | "STRUCT" | "UNION" | "ENUM" | "ENUM64" | "FLOAT" => return t.size,
                "PTR" => return Some(8),
                "ARRAY" => {
                    return Some(self.type_size(t.type_id?)? * t.nr_elems?);
                }
                "TYPEDEF" | "CONST" | "VOLATILE" | "RESTRICT" | "TYPE_TAG" => {
                    t = self.ty(t.type_id?)?;
                }
                _ => return None,
            }
        }
        None
    }

    /// Strips typedefs and qualifiers.
    fn resolve(&self, id: u32) -> Option<&Ty> {
        let mut t = self.ty(id)?;
        for _ in 0..64 {
            match t.kind.as_str() {
                "TYPEDEF" | "CONST" | "VOLATILE" | "RESTRICT" | "TYPE_TAG" => {
                    t = self.ty(t.type_id?)?;
                }
                _ => return Some(t),
            }
        }
        None
    }

    fn find(&self, t: &Ty, member: &str, base: u64) -> Option<OracleMember> {
        for m in &t.members {
            let bits = base + m.bits_offset;
            if m.name == member {
                return Some(OracleMember {
                    offset_bytes: bits / 8,
                    bit_offset: bits,
                    bitfield_size: m.bitfield_size.unwrap_or(0),
                    size: self.type_size(m.type_id),
                    type_id: m.type_id,
                });
            }
            if m.name == "(anon)"
                && let Some(inner) = self.resolve(m.type_id)
                && matches!(inner.kind.as_str(), "STRUCT" | "UNION")
                && let Some(found) = self.find(inner, member, bits)
            {
                return Some(found);
            }
        }
        None
    }

    /// `struct_name.member`, looking inside anonymous structs and unions.
    pub fn member(&self, struct_name: &str, member: &str) -> Option<OracleMember> {
        let outer = self.named(struct_name, &["STRUCT", "UNION"])?;
        self.find(outer, member, 0)
    }

    pub fn struct_size(&self, name: &str) -> Option<u64> {
        self.named(name, &["STRUCT", "UNION"])?.size
    }

    /// The element type name and count of an array member (`None`: not an array).
    pub fn array_of(&self, struct_name: &str, member: &str) -> Option<(String, u64)> {
        let m = self.member(struct_name, member)?;
        let arr = self.resolve(m.type_id)?;
        (arr.kind == "ARRAY").then_some(())?;
        Some((self.resolve(arr.type_id?)?.name.clone(), arr.nr_elems?))
    }

    /// The value of `name` in the enum called `enum_name`.
    pub fn enum_value(&self, enum_name: &str, name: &str) -> Option<i64> {
        let e = self.named(enum_name, &["ENUM", "ENUM64"])?;
        e.values
            .iter()
            .find(|v| v.name == name)
            .and_then(|v| v.val.as_i64())
    }

    /// The value of enumerator `name` in whichever enum has it; `None` when none does or when
    /// enums disagree on it.
    pub fn enumerator(&self, name: &str) -> Option<i64> {
        let mut vals = self
            .types
            .iter()
            .filter(|t| matches!(t.kind.as_str(), "ENUM" | "ENUM64"))
            .flat_map(|t| t.values.iter())
            .filter(|v| v.name == name)
            .filter_map(|v| v.val.as_i64());
        let first = vals.next()?;
        vals.all(|v| v == first).then_some(first)
    }

    /// `(struct, member)` for every named member of every struct or union whose name no other
    /// struct or union has.
    pub fn unique_struct_members(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut count: HashMap<&str, u32> = HashMap::new();
        for t in &self.types {
            if matches!(t.kind.as_str(), "STRUCT" | "UNION") && t.name != "(anon)" {
                *count.entry(t.name.as_str()).or_default() += 1;
            }
        }
        self.types
            .iter()
            .filter(move |t| count.get(t.name.as_str()) == Some(&1))
            .filter(|t| matches!(t.kind.as_str(), "STRUCT" | "UNION"))
            .flat_map(|t| {
                t.members
                    .iter()
                    .filter(|m| m.name != "(anon)")
                    .map(move |m| (t.name.as_str(), m.name.as_str()))
            })
    }

    /// The lowest id of a type of this name and bpftool kind (`"FUNC"`, `"TYPEDEF"`).
    pub fn id_of(&self, name: &str, kind: &str) -> Option<u32> {
        self.types
            .iter()
            .filter(|t| t.kind == kind && t.name == name)
            .map(|t| t.id)
            .min()
    }

    pub fn has_func(&self, name: &str) -> bool {
        self.types
            .iter()
            .any(|t| t.kind == "FUNC" && t.name == name)
    }
}

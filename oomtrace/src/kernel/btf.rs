//! A small, dependency-free reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`).
//!
//! aya's Rust eBPF emits no CO-RE relocations, so oomtrace resolves every kernel struct member it
//! reads (offsets, sizes, enum values such as `memory_cgrp_id`) from the running kernel's BTF in
//! userspace at start-up and hands the numbers to the eBPF programs as read-only globals.
//!
//! A hand-written reader rather than the `btf-rs` crate (LGPL-2.1-or-later, which a GPL-2.0
//! program may use): on this project's machine btf-rs 1.1.1 took ~450 ms and a 53 MiB peak to
//! parse vmlinux BTF, this reader ~45 ms and 9.5 MiB (docs/benchmarks.md). It needs only `std`
//! and `thiserror`; the daemon hands it the same bytes it hands aya's parser
//! ([`Btf::from_shared`]), so the file is read once.
//!
//! Format: `include/uapi/linux/btf.h` and `Documentation/bpf/btf.rst` in the kernel tree. A BTF
//! blob is a header (magic `0xeB9F`, version 1, `hdr_len`, then offsets and lengths of the type and
//! string sections, relative to the end of the header), a type section (records of
//! `struct btf_type`, 12 bytes, each followed by kind-specific data; type ids are implicit and
//! start at 1, id 0 is `void`) and a string section (NUL-terminated names).
//!
//! Only little-endian blobs are accepted (eBPF on a big-endian host is out of scope). Split BTF
//! (kernel modules, `/sys/kernel/btf/<module>`) is not supported: only the base `vmlinux` blob.
//!
//! Everything is bounds-checked when the blob is loaded (every record fits its section, every name
//! offset is inside the string section, every referenced type id exists), and lookups check again:
//! a malformed blob gives a [`BtfError`], never a panic.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// BTF magic number, as stored little-endian at the start of the blob.
const BTF_MAGIC: u16 = 0xEB9F;
/// The only BTF version there is.
const BTF_VERSION: u8 = 1;
/// Size of the fixed part of `struct btf_header` (newer headers may be longer: `hdr_len`).
const HEADER_LEN: usize = 24;
/// Size of `struct btf_type`.
const TYPE_LEN: usize = 12;
/// Limit for typedef/modifier chains and nesting of anonymous members (libbpf uses 32 too).
const MAX_DEPTH: u32 = 32;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// Errors from loading or querying BTF.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BtfError {
    /// The BTF file could not be read.
    #[error("cannot read BTF file {}", path.display())]
    Io {
        /// The file that was read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The BTF file was read but its content is malformed.
    #[error("invalid BTF in {}", path.display())]
    InFile {
        /// The file that was read.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: Box<BtfError>,
    },
    /// The blob is shorter than the BTF header.
    #[error("BTF header truncated: blob is {len} bytes, header needs {need}")]
    TruncatedHeader {
        /// Length of the blob.
        len: usize,
        /// Bytes the header needs (fixed part, or `hdr_len`).
        need: usize,
    },
    /// The blob does not start with the BTF magic.
    #[error("not BTF: magic is {found:#06x}, expected {BTF_MAGIC:#06x}")]
    BadMagic {
        /// The first two bytes, read little-endian.
        found: u16,
    },
    /// The blob is big-endian BTF (byte-swapped magic); only little-endian is supported.
    #[error("big-endian BTF is not supported")]
    UnsupportedEndianness,
    /// The header has a version other than 1.
    #[error("unsupported BTF version {version}")]
    UnsupportedVersion {
        /// The version byte.
        version: u8,
    },
    /// The header's `hdr_len` is smaller than the fixed header.
    #[error("BTF hdr_len {hdr_len} is smaller than the fixed header ({HEADER_LEN} bytes)")]
    BadHeaderLength {
        /// `hdr_len` from the header.
        hdr_len: u32,
    },
    /// A section described by the header extends past the end of the blob.
    #[error(
        "BTF {section} section (offset {offset}, length {len} after the header) \
         extends past the end of the blob ({blob_len} bytes)"
    )]
    SectionOutOfBounds {
        /// `"type"` or `"string"`.
        section: &'static str,
        /// Section offset from the end of the header.
        offset: u32,
        /// Section length.
        len: u32,
        /// Length of the blob.
        blob_len: usize,
    },
    /// The string section is empty, does not start with NUL or does not end with NUL.
    #[error("BTF string section is malformed (must start and end with a NUL byte)")]
    MalformedStringSection,
    /// The string section is not valid UTF-8.
    #[error("BTF string section is not valid UTF-8 (at byte {offset})")]
    InvalidUtf8 {
        /// Offset of the first invalid byte within the string section.
        offset: usize,
    },
    /// A name offset points outside the string section.
    #[error("type {type_id}: string offset {offset} is outside the string section ({len} bytes)")]
    StringOutOfRange {
        /// The type whose record holds the offset (0 if not known).
        type_id: u32,
        /// The name offset.
        offset: u32,
        /// Length of the string section.
        len: usize,
    },
    /// A type record (or its trailing data) runs past the end of the type section.
    #[error("type {type_id} (at byte {offset} of the blob) is truncated")]
    TruncatedType {
        /// The type id the record would have.
        type_id: u32,
        /// Byte offset in the blob of the record, or of the word that could not be read.
        offset: usize,
    },
    /// A type record has a kind this reader does not know.
    #[error("type {type_id} has unknown BTF kind {kind}")]
    UnknownKind {
        /// The type id.
        type_id: u32,
        /// The kind number.
        kind: u32,
    },
    /// A type refers to a type id that does not exist.
    #[error("type {referenced_by} refers to type {type_id}, but the blob has only {count} types")]
    InvalidTypeId {
        /// The missing type id.
        type_id: u32,
        /// The type holding the reference.
        referenced_by: u32,
        /// Number of type ids (including `void`, id 0).
        count: usize,
    },
    /// A type id passed to a lookup does not exist.
    #[error("no BTF type with id {type_id} ({count} types)")]
    NoSuchType {
        /// The type id.
        type_id: u32,
        /// Number of type ids (including `void`, id 0).
        count: usize,
    },
    /// A typedef/modifier chain or nesting of anonymous members is cyclic or too deep.
    #[error("type chain from type {type_id} is cyclic or deeper than {MAX_DEPTH}")]
    TooDeep {
        /// The type where the walk started.
        type_id: u32,
    },
    /// An offset or size computation overflowed `u32`.
    #[error("offset or size of type {type_id} overflows")]
    Overflow {
        /// The type being measured.
        type_id: u32,
    },
    /// An enumerator name occurs in several enums with different values.
    #[error("enumerator {name} has conflicting values in BTF ({first} and {second})")]
    AmbiguousEnumerator {
        /// The enumerator name.
        name: String,
        /// One value.
        first: i64,
        /// A different value.
        second: i64,
    },
}

/// Result type of this module.
pub type Result<T, E = BtfError> = std::result::Result<T, E>;

/// A struct or union member found by [`Btf::struct_member`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Byte offset from the start of the outer struct (nested anonymous offsets summed);
    /// `bit_offset / 8`.
    pub offset_bytes: u32,
    /// Offset in **bits** from the start of the outer struct. For a bitfield, `bit_offset % 8` is
    /// the position of its lowest bit within the byte at `offset_bytes`; otherwise a multiple of 8.
    pub bit_offset: u32,
    /// Width in bits if the member is a bitfield, else 0.
    pub bitfield_size: u32,
    /// The member's type id, resolved through typedef/const/volatile/restrict/type-tag.
    pub type_id: u32,
    /// Size in bytes of the member's type (for a bitfield: of its underlying integer); `None` if
    /// the type has no size (e.g. a flexible array of a forward-declared struct).
    pub size: Option<u32>,
}

/// A parameter of a function prototype, from [`Btf::func_proto_params`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    /// The parameter name; empty when unnamed (as in `btf_trace_*` typedefs).
    pub name: &'a str,
    /// The parameter type id as declared (not resolved, so typedefs such as `uid_t` stay
    /// visible). A last parameter with an empty name and type id 0 marks a variadic function.
    pub type_id: u32,
}

/// One type record, decoded from its fixed 12 bytes.
#[derive(Debug, Clone, Copy)]
struct RawType {
    id: u32,
    name_off: u32,
    info: u32,
    /// `size` for INT, ENUM, ENUM64, STRUCT, UNION, DATASEC, FLOAT; `type` for the others.
    size_or_type: u32,
    /// Absolute offset in the blob of the kind-specific data after the 12-byte record.
    extra: usize,
}

impl RawType {
    const VOID: RawType = RawType {
        id: 0,
        name_off: 0,
        info: 0,
        size_or_type: 0,
        extra: 0,
    };

    fn kind(self) -> u32 {
        (self.info >> 24) & 0x1f
    }

    fn vlen(self) -> usize {
        (self.info & 0xffff) as usize
    }

    fn kflag(self) -> bool {
        self.info >> 31 == 1
    }

    fn is_modifier(self) -> bool {
        matches!(
            self.kind(),
            KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
        )
    }
}

/// A parsed BTF blob with an index of its types.
///
/// Loading validates the whole blob; lookups by name use a sorted hash index of named structs,
/// unions, enums, typedefs and functions. When several types share a name (vmlinux has a few
/// structs defined differently in different compilation units), lookups use the one with the
/// lowest type id.
pub struct Btf {
    /// The blob; shared, so the daemon can hand the same bytes to aya's parser.
    data: Arc<Vec<u8>>,
    /// Absolute offset and length of the string section.
    str_start: usize,
    str_len: usize,
    /// Absolute offset of each type record, indexed by type id (entry 0, `void`, is unused).
    offsets: Vec<usize>,
    /// `(fnv1a(name), type id)` of named STRUCT/UNION/ENUM/ENUM64/TYPEDEF/FUNC types, sorted.
    names: Vec<(u64, u32)>,
    /// Pointer size, from the size of `long` (8 if the blob has no `long`).
    ptr_size: u32,
    /// Ids of the ENUM and ENUM64 types, for lookups by enumerator name.
    enums: Vec<u32>,
    /// Ids of the named FUNC types, ascending. Kept out of `names`: they are four in five named
    /// types of vmlinux and oomtrace looks up two of them, so a scan at lookup is cheaper than
    /// hashing and sorting them all at start-up.
    funcs: Vec<u32>,
}

impl fmt::Debug for Btf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Btf")
            .field("bytes", &self.data.len())
            .field("types", &self.offsets.len())
            .field("named", &self.names.len())
            .finish_non_exhaustive()
    }
}

fn u16_at(data: &[u8], pos: usize) -> Option<u16> {
    let b = data.get(pos..pos.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(data: &[u8], pos: usize) -> Option<u32> {
    let b = data.get(pos..pos.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// 64-bit FNV-1a: a fast, deterministic hash for the name index.
fn fnv1a(s: &[u8]) -> u64 {
    s.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Size in bytes of the data following a type record of `kind` with `vlen` entries.
fn extra_len(kind: u32, vlen: usize) -> Option<usize> {
    match kind {
        KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
        | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => Some(0),
        KIND_INT | KIND_VAR | KIND_DECL_TAG => Some(4),
        KIND_ARRAY => Some(12),
        KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => Some(12 * vlen),
        KIND_ENUM | KIND_FUNC_PROTO => Some(8 * vlen),
        _ => None,
    }
}

/// Absolute `(offset, length)` of a section, checked against the blob length.
fn section(
    name: &'static str,
    base: usize,
    off: u32,
    len: u32,
    blob_len: usize,
) -> Result<(usize, usize)> {
    let err = || BtfError::SectionOutOfBounds {
        section: name,
        offset: off,
        len,
        blob_len,
    };
    let start = base.checked_add(off as usize).ok_or_else(err)?;
    let end = start.checked_add(len as usize).ok_or_else(err)?;
    if end > blob_len {
        return Err(err());
    }
    Ok((start, len as usize))
}

/// Validation state while walking the type section.
struct Walk {
    str_len: usize,
    /// Highest type id referenced so far, and the type referencing it.
    max_ref: (u32, u32),
}

impl Walk {
    fn name(&self, type_id: u32, offset: u32) -> Result<()> {
        if offset as usize >= self.str_len {
            return Err(BtfError::StringOutOfRange {
                type_id,
                offset,
                len: self.str_len,
            });
        }
        Ok(())
    }

    fn type_ref(&mut self, referenced_by: u32, type_id: u32) {
        if type_id > self.max_ref.0 {
            self.max_ref = (type_id, referenced_by);
        }
    }

    /// Checks the trailing data of one record: name offsets and referenced type ids.
    fn record(&mut self, data: &[u8], t: RawType) -> Result<()> {
        let word = |pos: usize| {
            u32_at(data, pos).ok_or(BtfError::TruncatedType {
                type_id: t.id,
                offset: pos,
            })
        };
        match t.kind() {
            KIND_PTR | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_FUNC
            | KIND_VAR | KIND_DECL_TAG | KIND_TYPE_TAG => self.type_ref(t.id, t.size_or_type),
            KIND_ARRAY => {
                self.type_ref(t.id, word(t.extra)?);
                self.type_ref(t.id, word(t.extra + 4)?);
            }
            KIND_STRUCT | KIND_UNION => {
                for i in 0..t.vlen() {
                    let pos = t.extra + 12 * i;
                    self.name(t.id, word(pos)?)?;
                    self.type_ref(t.id, word(pos + 4)?);
                }
            }
            KIND_ENUM | KIND_ENUM64 => {
                let step = if t.kind() == KIND_ENUM { 8 } else { 12 };
                for i in 0..t.vlen() {
                    self.name(t.id, word(t.extra + step * i)?)?;
                }
            }
            KIND_FUNC_PROTO => {
                self.type_ref(t.id, t.size_or_type);
                for i in 0..t.vlen() {
                    let pos = t.extra + 8 * i;
                    self.name(t.id, word(pos)?)?;
                    self.type_ref(t.id, word(pos + 4)?);
                }
            }
            KIND_DATASEC => {
                for i in 0..t.vlen() {
                    self.type_ref(t.id, word(t.extra + 12 * i)?);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl Btf {
    /// Reads and parses a BTF file, usually `/sys/kernel/btf/vmlinux`.
    ///
    /// # Errors
    /// [`BtfError::Io`] if the file cannot be read, [`BtfError::InFile`] (wrapping the reason) if
    /// it is not valid BTF.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Btf> {
        let path = path.as_ref();
        let data = std::fs::read(path).map_err(|source| BtfError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Btf::from_bytes(data).map_err(|e| BtfError::InFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    /// Parses a BTF blob and builds its index.
    ///
    /// # Errors
    /// A [`BtfError`] describing the first problem found: truncated header, bad magic, big-endian
    /// blob, sections out of bounds, truncated or unknown type records, name offsets outside the
    /// string section, references to missing type ids.
    pub fn from_bytes(data: Vec<u8>) -> Result<Btf> {
        Btf::from_shared(Arc::new(data))
    }

    /// [`Btf::from_bytes`] of a blob that someone else reads too (no copy).
    ///
    /// # Errors
    /// As [`Btf::from_bytes`].
    pub fn from_shared(data: Arc<Vec<u8>>) -> Result<Btf> {
        let blob_len = data.len();
        let magic = u16_at(&data, 0).ok_or(BtfError::TruncatedHeader {
            len: blob_len,
            need: HEADER_LEN,
        })?;
        if magic == BTF_MAGIC.swap_bytes() {
            return Err(BtfError::UnsupportedEndianness);
        }
        if magic != BTF_MAGIC {
            return Err(BtfError::BadMagic { found: magic });
        }
        if blob_len < HEADER_LEN {
            return Err(BtfError::TruncatedHeader {
                len: blob_len,
                need: HEADER_LEN,
            });
        }
        let header = |pos| u32_at(&data, pos).unwrap_or(0); // in bounds: blob_len >= HEADER_LEN
        if data[2] != BTF_VERSION {
            return Err(BtfError::UnsupportedVersion { version: data[2] });
        }
        let hdr_len = header(4);
        if (hdr_len as usize) < HEADER_LEN {
            return Err(BtfError::BadHeaderLength { hdr_len });
        }
        if hdr_len as usize > blob_len {
            return Err(BtfError::TruncatedHeader {
                len: blob_len,
                need: hdr_len as usize,
            });
        }
        let base = hdr_len as usize;
        let (type_start, type_len) = section("type", base, header(8), header(12), blob_len)?;
        let (str_start, str_len) = section("string", base, header(16), header(20), blob_len)?;

        let strings = &data[str_start..str_start + str_len];
        if strings.first() != Some(&0) || strings.last() != Some(&0) {
            return Err(BtfError::MalformedStringSection);
        }
        std::str::from_utf8(strings).map_err(|e| BtfError::InvalidUtf8 {
            offset: e.valid_up_to(),
        })?;

        let mut btf = Btf {
            data,
            str_start,
            str_len,
            offsets: vec![usize::MAX],
            names: Vec::new(),
            ptr_size: 8,
            enums: Vec::new(),
            funcs: Vec::new(),
        };
        btf.index(type_start, type_len)?;
        Ok(btf)
    }

    /// Walks the type section: validates each record, records its offset, fills the name index.
    fn index(&mut self, type_start: usize, type_len: usize) -> Result<()> {
        let end = type_start + type_len;
        let mut walk = Walk {
            str_len: self.str_len,
            max_ref: (0, 0),
        };
        let mut pos = type_start;
        let mut id: u32 = 1;
        while pos < end {
            let truncated = || BtfError::TruncatedType {
                type_id: id,
                offset: pos,
            };
            if end - pos < TYPE_LEN {
                return Err(truncated());
            }
            let t = RawType {
                id,
                name_off: u32_at(&self.data, pos).unwrap_or(0),
                info: u32_at(&self.data, pos + 4).unwrap_or(0),
                size_or_type: u32_at(&self.data, pos + 8).unwrap_or(0),
                extra: pos + TYPE_LEN,
            };
            let extra = extra_len(t.kind(), t.vlen()).ok_or_else(|| BtfError::UnknownKind {
                type_id: id,
                kind: t.kind(),
            })?;
            let next = t.extra + extra;
            if next > end {
                return Err(truncated());
            }
            walk.name(id, t.name_off)?;
            walk.record(&self.data[..end], t)?;
            if matches!(t.kind(), KIND_ENUM | KIND_ENUM64) {
                self.enums.push(id);
            }
            let name = self.name_bytes(t.name_off).unwrap_or(b"");
            if !name.is_empty() {
                match t.kind() {
                    KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 | KIND_TYPEDEF => {
                        self.names.push((fnv1a(name), id));
                    }
                    KIND_FUNC => self.funcs.push(id),
                    KIND_INT if name == b"long int" || name == b"long unsigned int" => {
                        self.ptr_size = t.size_or_type;
                    }
                    _ => {}
                }
            }
            self.offsets.push(pos);
            pos = next;
            id = id
                .checked_add(1)
                .ok_or(BtfError::Overflow { type_id: id })?;
        }
        let (max, referenced_by) = walk.max_ref;
        if max as usize >= self.offsets.len() {
            return Err(BtfError::InvalidTypeId {
                type_id: max,
                referenced_by,
                count: self.offsets.len(),
            });
        }
        self.names.sort_unstable();
        Ok(())
    }

    /// The bytes of the NUL-terminated string at `offset` in the string section (which was
    /// checked to be UTF-8 as a whole when loading); for the index and lookups, which compare
    /// bytes and so need no UTF-8 check of each name.
    fn name_bytes(&self, offset: u32) -> Option<&[u8]> {
        let strings = self
            .data
            .get(self.str_start..self.str_start + self.str_len)?;
        let tail = strings.get(offset as usize..)?;
        memchr::memchr(0, tail).map(|len| &tail[..len])
    }

    /// The NUL-terminated string at `offset` in the string section.
    fn name(&self, offset: u32) -> Result<&str> {
        let err = || BtfError::StringOutOfRange {
            type_id: 0,
            offset,
            len: self.str_len,
        };
        let strings = self
            .data
            .get(self.str_start..self.str_start + self.str_len)
            .ok_or_else(err)?;
        let tail = strings.get(offset as usize..).ok_or_else(err)?;
        let len = memchr::memchr(0, tail).ok_or_else(err)?;
        std::str::from_utf8(&tail[..len]).map_err(|_| BtfError::InvalidUtf8 {
            offset: offset as usize,
        })
    }

    fn ty(&self, type_id: u32) -> Result<RawType> {
        if type_id == 0 {
            return Ok(RawType::VOID);
        }
        let no_such = || BtfError::NoSuchType {
            type_id,
            count: self.offsets.len(),
        };
        let pos = *self.offsets.get(type_id as usize).ok_or_else(no_such)?;
        let word = |p: usize| u32_at(&self.data, p).ok_or_else(no_such);
        Ok(RawType {
            id: type_id,
            name_off: word(pos)?,
            info: word(pos + 4)?,
            size_or_type: word(pos + 8)?,
            extra: pos + TYPE_LEN,
        })
    }

    fn word(&self, t: RawType, pos: usize) -> Result<u32> {
        u32_at(&self.data, pos).ok_or(BtfError::TruncatedType {
            type_id: t.id,
            offset: pos,
        })
    }

    /// The named types called `name` (structs, unions, enums, typedefs), by ascending id.
    fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = RawType> + 'a {
        let hash = fnv1a(name.as_bytes());
        let first = self.names.partition_point(|&(h, _)| h < hash);
        self.names[first..]
            .iter()
            .take_while(move |&&(h, _)| h == hash)
            .filter_map(|&(_, id)| self.ty(id).ok())
            .filter(move |t| self.name_bytes(t.name_off) == Some(name.as_bytes()))
    }

    /// The type of one of `kinds` called `name` with the lowest id.
    fn named_kind(&self, name: &str, kinds: &[u32]) -> Option<RawType> {
        let indexed = self.named(name).find(|t| kinds.contains(&t.kind()));
        if !kinds.contains(&KIND_FUNC) {
            return indexed;
        }
        let strings = self
            .data
            .get(self.str_start..self.str_start + self.str_len)?;
        let func = self.funcs.iter().find_map(|&id| {
            let t = self.ty(id).ok()?;
            let off = t.name_off as usize;
            (strings.get(off..off + name.len()) == Some(name.as_bytes())
                && strings.get(off + name.len()) == Some(&0))
            .then_some(t)
        });
        match (indexed, func) {
            (Some(a), Some(b)) => Some(if a.id < b.id { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// Follows typedef/const/volatile/restrict/type-tag to the underlying type.
    fn resolve(&self, type_id: u32) -> Result<RawType> {
        let mut t = self.ty(type_id)?;
        for _ in 0..MAX_DEPTH {
            if !t.is_modifier() {
                return Ok(t);
            }
            t = self.ty(t.size_or_type)?;
        }
        Err(BtfError::TooDeep { type_id })
    }

    /// For a pointer type (through typedefs and modifiers), the name of what it points to, itself
    /// resolved through typedefs and modifiers: `struct task_struct *` gives `task_struct`.
    #[must_use]
    pub fn pointee_name(&self, type_id: u32) -> Option<&str> {
        let t = self.resolve(type_id).ok()?;
        if t.kind() != KIND_PTR {
            return None;
        }
        let target = self.resolve(t.size_or_type).ok()?;
        self.type_name(target.id)
    }

    /// Number of type ids in the blob, including `void` (id 0).
    #[must_use]
    pub fn type_count(&self) -> usize {
        self.offsets.len()
    }

    /// Name of a type; `None` for `void`, anonymous types and ids that do not exist.
    #[must_use]
    pub fn type_name(&self, type_id: u32) -> Option<&str> {
        let t = self.ty(type_id).ok()?;
        self.name(t.name_off).ok().filter(|n| !n.is_empty())
    }

    /// Size in bytes of a type, resolved through typedefs and modifiers; arrays are element size
    /// times element count, pointers the size of the kernel's `long`.
    ///
    /// Returns `Ok(None)` for types without a size: `void`, forward declarations, functions.
    ///
    /// # Errors
    /// [`BtfError::NoSuchType`] for an unknown id, [`BtfError::TooDeep`] for a cyclic chain,
    /// [`BtfError::Overflow`] if an array's size overflows `u32`.
    pub fn type_size(&self, type_id: u32) -> Result<Option<u32>> {
        self.size_at(type_id, 0)
    }

    fn size_at(&self, type_id: u32, depth: u32) -> Result<Option<u32>> {
        if depth > MAX_DEPTH {
            return Err(BtfError::TooDeep { type_id });
        }
        let t = self.resolve(type_id)?;
        Ok(match t.kind() {
            KIND_INT | KIND_ENUM | KIND_ENUM64 | KIND_STRUCT | KIND_UNION | KIND_DATASEC
            | KIND_FLOAT => Some(t.size_or_type),
            KIND_PTR => Some(self.ptr_size),
            KIND_VAR => self.size_at(t.size_or_type, depth + 1)?,
            KIND_ARRAY => {
                let elem = self.word(t, t.extra)?;
                let nelems = self.word(t, t.extra + 8)?;
                match self.size_at(elem, depth + 1)? {
                    Some(size) => Some(
                        size.checked_mul(nelems)
                            .ok_or(BtfError::Overflow { type_id: t.id })?,
                    ),
                    None => None,
                }
            }
            _ => None,
        })
    }

    /// Size in bytes of the struct or union called `name` (`None` if there is none).
    #[must_use]
    pub fn struct_size(&self, name: &str) -> Option<u32> {
        self.named_kind(name, &[KIND_STRUCT, KIND_UNION])
            .map(|t| t.size_or_type)
    }

    /// Finds member `member` of the struct or union called `struct_name`, looking into anonymous
    /// nested structs and unions too (the offset returned is then from the start of the outer
    /// struct).
    ///
    /// `member` is a single member name, not a path. Returns `Ok(None)` if the struct or the
    /// member does not exist on this kernel.
    ///
    /// # Errors
    /// Only for malformed BTF: cyclic or too deep nesting, offsets overflowing `u32`.
    pub fn struct_member(&self, struct_name: &str, member: &str) -> Result<Option<Member>> {
        let Some(outer) = self.named_kind(struct_name, &[KIND_STRUCT, KIND_UNION]) else {
            return Ok(None);
        };
        let Some((bit_offset, bitfield_size, raw_type)) = self.find_member(outer, member, 0, 0)?
        else {
            return Ok(None);
        };
        let resolved = self.resolve(raw_type)?;
        Ok(Some(Member {
            offset_bytes: bit_offset / 8,
            bit_offset,
            bitfield_size,
            type_id: resolved.id,
            size: self.type_size(resolved.id)?,
        }))
    }

    /// Reads member `i` of a struct/union: `(name offset, type id, bit offset, bitfield size)`.
    fn member_at(&self, st: RawType, i: usize) -> Result<(u32, u32, u32, u32)> {
        let pos = st.extra + 12 * i;
        let name_off = self.word(st, pos)?;
        let type_id = self.word(st, pos + 4)?;
        let offset = self.word(st, pos + 8)?;
        if st.kflag() {
            return Ok((name_off, type_id, offset & 0x00ff_ffff, offset >> 24));
        }
        // Without kind_flag, a bitfield is encoded in its INT type (BTF_INT_OFFSET/BTF_INT_BITS).
        let t = self.resolve(type_id)?;
        if t.kind() == KIND_INT {
            let enc = self.word(t, t.extra)?;
            let (int_offset, bits) = ((enc >> 16) & 0xff, enc & 0xff);
            if int_offset != 0 || bits != t.size_or_type.saturating_mul(8) {
                let bit = offset
                    .checked_add(int_offset)
                    .ok_or(BtfError::Overflow { type_id: st.id })?;
                return Ok((name_off, type_id, bit, bits));
            }
        }
        Ok((name_off, type_id, offset, 0))
    }

    /// Depth-first search for a named member: direct members first, then anonymous ones.
    /// Returns `(bit offset from the outermost struct, bitfield size, member type id)`.
    fn find_member(
        &self,
        st: RawType,
        name: &str,
        base: u32,
        depth: u32,
    ) -> Result<Option<(u32, u32, u32)>> {
        if depth > MAX_DEPTH {
            return Err(BtfError::TooDeep { type_id: st.id });
        }
        if !matches!(st.kind(), KIND_STRUCT | KIND_UNION) {
            return Ok(None);
        }
        let at = |bit: u32| {
            base.checked_add(bit)
                .ok_or(BtfError::Overflow { type_id: st.id })
        };
        for i in 0..st.vlen() {
            let (name_off, type_id, bit, bitfield) = self.member_at(st, i)?;
            if self.name(name_off)? == name {
                return Ok(Some((at(bit)?, bitfield, type_id)));
            }
        }
        for i in 0..st.vlen() {
            let (name_off, type_id, bit, _) = self.member_at(st, i)?;
            if self.name(name_off)?.is_empty() {
                let inner = self.resolve(type_id)?;
                if let Some(found) = self.find_member(inner, name, at(bit)?, depth + 1)? {
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    /// If `type_id` (through typedefs and modifiers) is an array, its element type id (resolved
    /// through typedefs and modifiers) and element count.
    #[must_use]
    pub fn array_info(&self, type_id: u32) -> Option<(u32, u32)> {
        let t = self.resolve(type_id).ok()?;
        if t.kind() != KIND_ARRAY {
            return None;
        }
        let elem = self.resolve(self.word(t, t.extra).ok()?).ok()?;
        Some((elem.id, self.word(t, t.extra + 8).ok()?))
    }

    /// Whether `type_id` is an array of `struct struct_name` (element typedefs resolved).
    ///
    /// E.g. `mm_struct.rss_stat` is `struct percpu_counter[NR_MM_COUNTERS]` since 6.2, while
    /// older kernels have `struct mm_rss_stat` (holding `atomic_long_t count[]`).
    ///
    /// # Errors
    /// Only for malformed BTF (cyclic typedef chains).
    pub fn is_array_of_struct(&self, type_id: u32, struct_name: &str) -> Result<bool> {
        let t = self.resolve(type_id)?;
        if t.kind() != KIND_ARRAY {
            return Ok(false);
        }
        let elem = self.resolve(self.word(t, t.extra)?)?;
        Ok(elem.kind() == KIND_STRUCT && self.name(elem.name_off)? == struct_name)
    }

    /// Value of enumerator `variant` of `enum enum_name` (ENUM or ENUM64), e.g.
    /// `enum_value("cgroup_subsys_id", "memory_cgrp_id")`.
    ///
    /// Unsigned 64-bit values above `i64::MAX` are returned reinterpreted (two's complement).
    #[must_use]
    pub fn enum_value(&self, enum_name: &str, variant: &str) -> Option<i64> {
        let t = self.named_kind(enum_name, &[KIND_ENUM, KIND_ENUM64])?;
        self.enumerators(t)
            .ok()?
            .into_iter()
            .find(|&(n, _)| n == variant)
            .map(|(_, v)| v)
    }

    /// Value of an enumerator searched in every enum, named or anonymous (e.g. `MM_FILEPAGES`,
    /// which lives in an anonymous enum).
    ///
    /// # Errors
    /// [`BtfError::AmbiguousEnumerator`] if enums disagree on the value (vmlinux has a few such
    /// names, from different compilation units).
    pub fn enumerator_value(&self, variant: &str) -> Result<Option<i64>> {
        let mut found: Option<i64> = None;
        let strings = &self.data[self.str_start..self.str_start + self.str_len];
        let is_variant = |off: u32| {
            let off = off as usize;
            strings.get(off..off + variant.len()) == Some(variant.as_bytes())
                && strings.get(off + variant.len()) == Some(&0)
        };
        for &id in &self.enums {
            let t = self.ty(id)?;
            // Most enums do not have it: look at the names alone before decoding them all.
            let step = if t.kind() == KIND_ENUM64 { 12 } else { 8 };
            let has = (0..t.vlen())
                .any(|i| u32_at(&self.data, t.extra + step * i).is_some_and(is_variant));
            if !has {
                continue;
            }
            for (name, value) in self.enumerators(t)? {
                if name != variant {
                    continue;
                }
                match found {
                    Some(first) if first != value => {
                        return Err(BtfError::AmbiguousEnumerator {
                            name: variant.to_owned(),
                            first,
                            second: value,
                        });
                    }
                    _ => found = Some(value),
                }
            }
        }
        Ok(found)
    }

    /// `(name, value)` of each enumerator of an ENUM or ENUM64 type.
    fn enumerators(&self, t: RawType) -> Result<Vec<(&str, i64)>> {
        let step = if t.kind() == KIND_ENUM64 { 12 } else { 8 };
        let signed = t.kflag();
        let mut out = Vec::with_capacity(t.vlen());
        for i in 0..t.vlen() {
            let pos = t.extra + step * i;
            let name = self.name(self.word(t, pos)?)?;
            let lo = self.word(t, pos + 4)?;
            let value = if t.kind() == KIND_ENUM64 {
                let raw = (u64::from(self.word(t, pos + 8)?) << 32) | u64::from(lo);
                i64::from_ne_bytes(raw.to_ne_bytes())
            } else if signed {
                i64::from(i32::from_ne_bytes(lo.to_ne_bytes()))
            } else {
                i64::from(lo)
            };
            out.push((name, value));
        }
        Ok(out)
    }

    /// The type id a BTF-typed hook attaches to: the TYPEDEF `btf_trace_<event>` of a tp_btf
    /// program, the FUNC of an fentry/fexit one; the lowest id of that kind and name, the one
    /// aya's and libbpf's lookups pick. `None` when this kernel's BTF has none.
    #[must_use]
    pub fn attach_id(&self, name: &str, kind: AttachKind) -> Option<u32> {
        let k = match kind {
            AttachKind::Typedef => KIND_TYPEDEF,
            AttachKind::Func => KIND_FUNC,
        };
        self.named_kind(name, &[k]).map(|t| t.id)
    }

    /// Whether a function (BTF FUNC) called `name` exists, e.g. `oom_kill_process`.
    #[must_use]
    pub fn has_func(&self, name: &str) -> bool {
        self.named_kind(name, &[KIND_FUNC]).is_some()
    }

    /// Parameters of a function (FUNC) or of a typedef of a function pointer, e.g.
    /// `btf_trace_mark_victim` (`typedef void (*)(void *, struct task_struct *, uid_t)` on 6.18).
    ///
    /// Returns `Ok(None)` if there is no FUNC or TYPEDEF of that name, or if it is not (a pointer
    /// to) a function prototype.
    ///
    /// # Errors
    /// Only for malformed BTF (cyclic chains).
    pub fn func_proto_params(&self, name: &str) -> Result<Option<Vec<Param<'_>>>> {
        let Some(mut t) = self.named_kind(name, &[KIND_FUNC, KIND_TYPEDEF]) else {
            return Ok(None);
        };
        let start = t.id;
        let mut depth = 0;
        while t.kind() != KIND_FUNC_PROTO {
            if !(t.is_modifier() || matches!(t.kind(), KIND_FUNC | KIND_PTR)) {
                return Ok(None);
            }
            depth += 1;
            if depth > MAX_DEPTH {
                return Err(BtfError::TooDeep { type_id: start });
            }
            t = self.ty(t.size_or_type)?;
        }
        let mut params = Vec::with_capacity(t.vlen());
        for i in 0..t.vlen() {
            let pos = t.extra + 8 * i;
            params.push(Param {
                name: self.name(self.word(t, pos)?)?,
                type_id: self.word(t, pos + 4)?,
            });
        }
        Ok(Some(params))
    }
}

/// The kind of the type a BTF-typed hook attaches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachKind {
    /// `btf_trace_<event>`, for tp_btf.
    Typedef,
    /// The traced function, for fentry/fexit.
    Func,
}

#[cfg(test)]
mod tests {
    use super::*;

    const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

    /// The host's BTF, or `None` (test skipped) if the kernel has none; CI requires it.
    fn host_btf() -> Option<Btf> {
        if !Path::new(VMLINUX).exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{VMLINUX} is missing and CI=true: this test needs the kernel's BTF"
            );
            eprintln!("skipping: {VMLINUX} does not exist (kernel without CONFIG_DEBUG_INFO_BTF)");
            return None;
        }
        Some(Btf::from_file(VMLINUX).expect("host BTF parses"))
    }

    fn member(btf: &Btf, s: &str, m: &str) -> Member {
        btf.struct_member(s, m)
            .unwrap()
            .unwrap_or_else(|| panic!("{s}.{m} not found"))
    }

    /// bpftool's reading of the same BTF: the expected answers, on whatever build runs the test.
    fn oracle() -> Option<&'static crate::kernel::bpftool::Oracle> {
        crate::kernel::bpftool::Oracle::host()
    }

    /// Every member the programs read (and a few more of the same structs).
    const READ_BY_OOMTRACE: &[(&str, &str)] = &[
        ("task_struct", "pid"),
        ("task_struct", "tgid"),
        ("task_struct", "comm"),
        ("task_struct", "mm"),
        ("task_struct", "signal"),
        ("task_struct", "cgroups"),
        ("task_struct", "flags"),
        ("task_struct", "real_cred"),
        ("signal_struct", "oom_score_adj"),
        ("cred", "uid"),
        ("mm_struct", "rss_stat"),
        ("mm_struct", "total_vm"),
        ("mm_struct", "pgtables_bytes"),
        ("percpu_counter", "count"),
        ("css_set", "subsys"),
        ("css_set", "dfl_cgrp"),
        ("cgroup_subsys_state", "cgroup"),
        ("cgroup_subsys_state", "parent"),
        ("cgroup", "kn"),
        ("kernfs_node", "name"),
        ("kernfs_node", "id"),
        ("mem_cgroup", "css"),
        ("mem_cgroup", "memory"),
        ("mem_cgroup", "oom_group"),
        ("page_counter", "usage"),
        ("page_counter", "max"),
        ("oom_control", "zonelist"),
        ("oom_control", "nodemask"),
        ("oom_control", "memcg"),
        ("oom_control", "gfp_mask"),
        ("oom_control", "order"),
        ("oom_control", "totalpages"),
        ("oom_control", "chosen"),
        ("oom_control", "chosen_points"),
        ("oom_control", "constraint"),
    ];

    fn assert_agrees(btf: &Btf, o: &crate::kernel::bpftool::Oracle, s: &str, m: &str) {
        let want = o
            .member(s, m)
            .unwrap_or_else(|| panic!("bpftool has no {s}.{m}"));
        let got = member(btf, s, m);
        assert_eq!(
            (
                u64::from(got.offset_bytes),
                u64::from(got.bit_offset),
                got.bitfield_size,
                got.size.map(u64::from)
            ),
            (
                want.offset_bytes,
                want.bit_offset,
                want.bitfield_size,
                want.size
            ),
            "{s}.{m}: (offset, bit offset, bitfield size, size)"
        );
    }

    #[test]
    fn members_oomtrace_reads_agree_with_bpftool() {
        let Some(btf) = host_btf() else { return };
        let Some(o) = oracle() else { return };
        for (s, m) in READ_BY_OOMTRACE {
            assert_agrees(&btf, o, s, m);
        }
        // kernfs_node.parent was renamed __parent (6.15): exactly one exists, in both readers.
        for name in ["parent", "__parent"] {
            let ours = btf.struct_member("kernfs_node", name).unwrap();
            assert_eq!(
                ours.is_some(),
                o.member("kernfs_node", name).is_some(),
                "{name}"
            );
            if ours.is_some() {
                assert_agrees(&btf, o, "kernfs_node", name);
            }
        }
        assert!(
            btf.struct_member("kernfs_node", "parent")
                .unwrap()
                .is_some()
                != btf
                    .struct_member("kernfs_node", "__parent")
                    .unwrap()
                    .is_some()
        );
        // Arrays: element type and count.
        for (s, m) in [
            ("task_struct", "comm"),
            ("css_set", "subsys"),
            ("mm_struct", "rss_stat"),
        ] {
            let ours = btf
                .array_info(member(&btf, s, m).type_id)
                .map(|(elem, n)| (btf.type_name(elem).unwrap_or("").to_owned(), u64::from(n)));
            let theirs = o.array_of(s, m).map(|(elem, n)| {
                // bpftool names anonymous types "(anon)"; ours has no name.
                (
                    if elem == "(anon)" {
                        String::new()
                    } else {
                        elem
                    },
                    n,
                )
            });
            if s == "mm_struct" && theirs.is_none() {
                // Before 6.2 rss_stat is a struct mm_rss_stat, not an array.
                assert_eq!(ours, None);
                continue;
            }
            assert_eq!(ours, theirs, "{s}.{m}: (element, count)");
        }
        for s in [
            "task_struct",
            "percpu_counter",
            "oom_control",
            "page_counter",
            "kernfs_node",
        ] {
            assert_eq!(
                btf.struct_size(s).map(u64::from),
                o.struct_size(s),
                "size of {s}"
            );
        }
    }

    /// Not only the members oomtrace reads: the named members of one struct in 16 (of those
    /// whose name is unique; all would take a minute in a debug build), as both readers see them.
    #[test]
    fn struct_members_across_the_btf_agree_with_bpftool() {
        let Some(btf) = host_btf() else { return };
        let Some(o) = oracle() else { return };
        assert_eq!(btf.type_count(), o.type_count(), "number of types");
        let mut checked = 0;
        let mut structs = 0;
        let mut last = "";
        for (s, m) in o.unique_struct_members() {
            if s != last {
                structs += 1;
                last = s;
            }
            if structs % 16 == 0 {
                assert_agrees(&btf, o, s, m);
                checked += 1;
            }
        }
        assert!(checked > 2_000, "only {checked} members compared");
    }

    /// The ids the BTF-typed hooks attach to (handed to the kernel through aya's
    /// `load_with_btf_id`, vendor/aya): bpftool and aya's own lookup in its parse of the whole
    /// kernel BTF (what `load(name, &btf)` would have used) must give the id we give.
    #[test]
    fn attach_ids_agree_with_bpftool_and_aya() {
        use aya_obj::btf::BtfKind;
        let Some(btf) = host_btf() else { return };
        let Some(o) = oracle() else { return };
        let full = aya::Btf::from_sys_fs().expect("aya parses the host's BTF");
        let mut found = 0;
        for (name, kind, okind, akind) in [
            (
                "btf_trace_mark_victim",
                AttachKind::Typedef,
                "TYPEDEF",
                BtfKind::Typedef,
            ),
            ("mark_oom_victim", AttachKind::Func, "FUNC", BtfKind::Func),
            ("oom_kill_process", AttachKind::Func, "FUNC", BtfKind::Func),
            (
                "__oom_kill_process",
                AttachKind::Func,
                "FUNC",
                BtfKind::Func,
            ),
        ] {
            let id = btf.attach_id(name, kind);
            assert_eq!(id, o.id_of(name, okind), "{name}: bpftool");
            assert_eq!(
                id,
                full.id_by_type_name_kind(name, akind).ok(),
                "{name}: aya"
            );
            found += usize::from(id.is_some());
        }
        // Every kernel oomtrace supports has the tracepoint's typedef.
        assert!(found >= 1, "no attach id found in the host's BTF");
        assert_eq!(
            btf.attach_id("btf_trace_mark_victim", AttachKind::Func),
            None
        );
        assert_eq!(
            btf.attach_id("no_such_function_xyz", AttachKind::Func),
            None
        );
    }

    #[test]
    fn enums_and_funcs_agree_with_bpftool() {
        let Some(btf) = host_btf() else { return };
        let Some(o) = oracle() else { return };
        for (e, v) in [
            ("cgroup_subsys_id", "memory_cgrp_id"),
            ("cgroup_subsys_id", "CGROUP_SUBSYS_COUNT"),
            ("oom_constraint", "CONSTRAINT_NONE"),
            ("oom_constraint", "CONSTRAINT_MEMCG"),
        ] {
            let want = o.enum_value(e, v);
            assert!(want.is_some(), "bpftool has no {e}.{v}");
            assert_eq!(btf.enum_value(e, v), want, "{e}.{v}");
        }
        for v in [
            "MM_FILEPAGES",
            "MM_ANONPAGES",
            "MM_SWAPENTS",
            "MM_SHMEMPAGES",
            "NR_MM_COUNTERS",
        ] {
            assert_eq!(btf.enumerator_value(v).unwrap(), o.enumerator(v), "{v}");
        }
        assert_eq!(
            btf.enumerator_value("no_such_enumerator_xyz").unwrap(),
            None
        );
        assert_eq!(btf.enum_value("cgroup_subsys_id", "no_such_id"), None);
        assert_eq!(btf.enum_value("no_such_enum", "memory_cgrp_id"), None);
        // css_set.subsys has CGROUP_SUBSYS_COUNT entries.
        let (_, n) = btf
            .array_info(member(&btf, "css_set", "subsys").type_id)
            .unwrap();
        assert_eq!(
            Some(i64::from(n)),
            o.enum_value("cgroup_subsys_id", "CGROUP_SUBSYS_COUNT")
        );
        for f in [
            "out_of_memory",
            "oom_kill_process",
            "__oom_kill_process",
            "mark_oom_victim",
            "no_such_function_xyz",
            "task_struct",
        ] {
            assert_eq!(btf.has_func(f), o.has_func(f), "FUNC {f}");
        }
        assert!(btf.has_func("out_of_memory"));
        // The tracepoint's prototype: (void *, struct task_struct *[, uid_t]).
        let params = btf
            .func_proto_params("btf_trace_mark_victim")
            .unwrap()
            .unwrap();
        assert!(matches!(params.len(), 2 | 3), "{params:?}");
        let task = btf.type_name(params[1].type_id);
        assert_eq!(task, None, "a pointer has no name");
        assert_eq!(btf.func_proto_params("no_such_tp_xyz").unwrap(), None);
        assert_eq!(btf.func_proto_params("u32").unwrap(), None); // a typedef, not a function
        if btf.has_func("oom_kill_process") {
            let okp = btf.func_proto_params("oom_kill_process").unwrap().unwrap();
            assert_eq!(
                okp.iter().map(|p| p.name).collect::<Vec<_>>(),
                ["oc", "message"]
            );
        }
    }

    // ---- synthetic blobs ----

    /// Builds little-endian BTF blobs for the malformed-input tests.
    struct Builder {
        types: Vec<u8>,
        strings: Vec<u8>,
    }

    impl Builder {
        fn new() -> Self {
            Builder {
                types: Vec::new(),
                strings: vec![0],
            }
        }
        fn s(&mut self, name: &str) -> u32 {
            if name.is_empty() {
                return 0;
            }
            let off = u32::try_from(self.strings.len()).unwrap();
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            off
        }
        fn words(&mut self, words: &[u32]) {
            for w in words {
                self.types.extend_from_slice(&w.to_le_bytes());
            }
        }
        fn ty(&mut self, name: &str, kind: u32, vlen: u32, kflag: bool, size_or_type: u32) {
            let name = self.s(name);
            self.words(&[
                name,
                u32::from(kflag) << 31 | kind << 24 | vlen,
                size_or_type,
            ]);
        }
        fn int(&mut self, name: &str, size: u32) {
            self.ty(name, KIND_INT, 0, false, size);
            self.words(&[size * 8]);
        }
        fn members(&mut self, members: &[(&str, u32, u32)]) {
            for &(name, ty, off) in members {
                let name = self.s(name);
                self.words(&[name, ty, off]);
            }
        }
        fn blob(&self) -> Vec<u8> {
            let mut b = Vec::new();
            b.extend_from_slice(&BTF_MAGIC.to_le_bytes());
            b.extend_from_slice(&[BTF_VERSION, 0]);
            let tl = u32::try_from(self.types.len()).unwrap();
            let sl = u32::try_from(self.strings.len()).unwrap();
            for w in [24, 0, tl, tl, sl] {
                b.extend_from_slice(&w.to_le_bytes());
            }
            b.extend_from_slice(&self.types);
            b.extend_from_slice(&self.strings);
            b
        }
    }

    /// A blob with nested anonymous members, a bitfield, enums, a typedef'd array and a FUNC.
    fn sample() -> Builder {
        let mut b = Builder::new();
        b.int("int", 4); // 1
        b.int("long int", 8); // 2
        b.ty("", KIND_PTR, 0, false, 1); // 3: int *
        // 4: struct outer { int a; union { int b; struct { long c; int d:3; }; }; int *p; }
        b.ty("outer", KIND_STRUCT, 3, true, 32);
        b.members(&[("a", 1, 0), ("", 5, 64), ("p", 3, 192)]);
        b.ty("", KIND_UNION, 2, false, 16); // 5
        b.members(&[("b", 1, 0), ("", 6, 0)]);
        b.ty("", KIND_STRUCT, 2, true, 16); // 6
        b.members(&[("c", 2, 0), ("d", 1, (3 << 24) | 0x45)]);
        b.ty("e", KIND_ENUM, 2, true, 4); // 7: signed
        let (x, y) = (b.s("X"), b.s("Y"));
        b.words(&[x, 7, y, u32::MAX]);
        b.ty("e64", KIND_ENUM64, 1, false, 8); // 8
        let z = b.s("Z");
        b.words(&[z, 1, 2]);
        b.ty("arr_t", KIND_TYPEDEF, 0, false, 10); // 9
        b.ty("", KIND_ARRAY, 0, false, 0); // 10: struct outer[3]
        b.words(&[4, 1, 3]);
        b.ty("", KIND_FUNC_PROTO, 2, false, 1); // 11
        let (pa, pb) = (b.s("pa"), b.s("pb"));
        b.words(&[pa, 3, pb, 9]);
        b.ty("f", KIND_FUNC, 1, false, 11); // 12
        b.ty("cv", KIND_CONST, 0, false, 9); // 13 (a named const, for resolution)
        b.ty("", KIND_FLOAT, 0, false, 8); // 14
        b.ty("t", KIND_DECL_TAG, 0, false, 4); // 15
        b.words(&[u32::MAX]);
        b.ty("tt", KIND_TYPE_TAG, 0, false, 3); // 16
        b.ty("fw", KIND_FWD, 0, false, 0); // 17
        b.ty("v", KIND_VAR, 0, false, 1); // 18
        b.words(&[1]);
        b.ty(".data", KIND_DATASEC, 1, false, 4); // 19
        b.words(&[18, 0, 4]);
        b.ty("", KIND_VOLATILE, 0, false, 1); // 20
        b.ty("", KIND_RESTRICT, 0, false, 3); // 21
        b
    }

    #[test]
    fn synthetic_blob_all_kinds() {
        let btf = Btf::from_bytes(sample().blob()).unwrap();
        assert_eq!(btf.type_count(), 22);
        let ma = btf.struct_member("outer", "a").unwrap().unwrap();
        assert_eq!(
            ma,
            Member {
                offset_bytes: 0,
                bit_offset: 0,
                bitfield_size: 0,
                type_id: 1,
                size: Some(4)
            }
        );
        let mb = btf.struct_member("outer", "b").unwrap().unwrap();
        assert_eq!((mb.offset_bytes, mb.size), (8, Some(4)));
        let mc = btf.struct_member("outer", "c").unwrap().unwrap();
        assert_eq!((mc.offset_bytes, mc.type_id, mc.size), (8, 2, Some(8)));
        let md = btf.struct_member("outer", "d").unwrap().unwrap();
        assert_eq!(
            md,
            Member {
                offset_bytes: 16,
                bit_offset: 133,
                bitfield_size: 3,
                type_id: 1,
                size: Some(4)
            }
        );
        let mp = btf.struct_member("outer", "p").unwrap().unwrap();
        assert_eq!((mp.offset_bytes, mp.size), (24, Some(8)));
        assert_eq!(btf.struct_member("outer", "zz").unwrap(), None);
        assert_eq!(btf.struct_member("nothing", "a").unwrap(), None);
        assert_eq!(btf.struct_size("outer"), Some(32));
        assert_eq!(btf.enum_value("e", "X"), Some(7));
        assert_eq!(btf.enum_value("e", "Y"), Some(-1));
        assert_eq!(btf.enum_value("e64", "Z"), Some(1 | 2 << 32));
        assert_eq!(btf.enumerator_value("Y").unwrap(), Some(-1));
        assert_eq!(btf.type_size(9).unwrap(), Some(96));
        assert_eq!(btf.type_size(13).unwrap(), Some(96));
        assert_eq!(btf.type_size(17).unwrap(), None);
        assert_eq!(btf.type_size(18).unwrap(), Some(4));
        assert_eq!(btf.type_size(0).unwrap(), None);
        assert!(matches!(
            btf.type_size(99),
            Err(BtfError::NoSuchType { type_id: 99, .. })
        ));
        assert_eq!(btf.array_info(13), Some((4, 3)));
        assert_eq!(btf.array_info(4), None);
        assert!(btf.is_array_of_struct(9, "outer").unwrap());
        assert!(!btf.is_array_of_struct(9, "other").unwrap());
        assert_eq!(btf.type_name(4), Some("outer"));
        assert_eq!(btf.type_name(5), None);
        assert_eq!(btf.type_name(1000), None);
        let params = btf.func_proto_params("f").unwrap().unwrap();
        assert_eq!(
            params,
            [
                Param {
                    name: "pa",
                    type_id: 3
                },
                Param {
                    name: "pb",
                    type_id: 9
                }
            ]
        );
        assert!(btf.has_func("f"));
        assert!(!btf.has_func("outer"));
    }

    fn header_word(blob: &mut [u8], index: usize, value: u32) {
        blob[4 + 4 * index..8 + 4 * index].copy_from_slice(&value.to_le_bytes());
    }

    #[test]
    fn truncated_header() {
        let blob = sample().blob();
        for len in [0, 1, 2, 10, 23] {
            let err = Btf::from_bytes(blob[..len].to_vec()).unwrap_err();
            assert!(
                matches!(err, BtfError::TruncatedHeader { .. }),
                "len {len}: {err}"
            );
        }
        let mut long_header = blob.clone();
        header_word(&mut long_header, 0, 4096);
        assert!(matches!(
            Btf::from_bytes(long_header).unwrap_err(),
            BtfError::TruncatedHeader { need: 4096, .. }
        ));
        let mut short_header = blob;
        header_word(&mut short_header, 0, 8);
        assert!(matches!(
            Btf::from_bytes(short_header).unwrap_err(),
            BtfError::BadHeaderLength { hdr_len: 8 }
        ));
    }

    #[test]
    fn bad_magic_and_endianness_and_version() {
        let mut blob = sample().blob();
        blob[0] = 0x7f;
        assert!(matches!(
            Btf::from_bytes(blob.clone()).unwrap_err(),
            BtfError::BadMagic { found: 0xeb7f }
        ));
        blob[..2].copy_from_slice(&BTF_MAGIC.to_be_bytes());
        assert!(matches!(
            Btf::from_bytes(blob.clone()).unwrap_err(),
            BtfError::UnsupportedEndianness
        ));
        blob[..2].copy_from_slice(&BTF_MAGIC.to_le_bytes());
        blob[2] = 2;
        assert!(matches!(
            Btf::from_bytes(blob).unwrap_err(),
            BtfError::UnsupportedVersion { version: 2 }
        ));
    }

    #[test]
    fn sections_past_the_end() {
        let blob = sample().blob();
        let mut bad = blob.clone();
        header_word(&mut bad, 2, 1_000_000); // type_len
        assert!(matches!(
            Btf::from_bytes(bad).unwrap_err(),
            BtfError::SectionOutOfBounds {
                section: "type",
                len: 1_000_000,
                ..
            }
        ));
        let mut bad = blob.clone();
        header_word(&mut bad, 1, u32::MAX); // type_off
        assert!(matches!(
            Btf::from_bytes(bad).unwrap_err(),
            BtfError::SectionOutOfBounds {
                section: "type",
                ..
            }
        ));
        let mut bad = blob.clone();
        header_word(&mut bad, 4, 1_000_000); // str_len
        assert!(matches!(
            Btf::from_bytes(bad).unwrap_err(),
            BtfError::SectionOutOfBounds {
                section: "string",
                ..
            }
        ));
        // A truncated file: the sections no longer fit.
        let cut = blob[..blob.len() - 1].to_vec();
        assert!(matches!(
            Btf::from_bytes(cut).unwrap_err(),
            BtfError::SectionOutOfBounds {
                section: "string",
                ..
            }
        ));
    }

    #[test]
    fn string_offset_out_of_range() {
        let mut b = Builder::new();
        b.int("int", 4);
        b.words(&[5000, KIND_TYPEDEF << 24, 1]); // type 2, name offset 5000
        let err = Btf::from_bytes(b.blob()).unwrap_err();
        assert!(
            matches!(
                err,
                BtfError::StringOutOfRange {
                    type_id: 2,
                    offset: 5000,
                    ..
                }
            ),
            "{err}"
        );
        // A member name out of range.
        let mut b = Builder::new();
        b.int("int", 4);
        b.ty("s", KIND_STRUCT, 1, false, 4);
        b.words(&[7777, 1, 0]);
        let err = Btf::from_bytes(b.blob()).unwrap_err();
        assert!(
            matches!(
                err,
                BtfError::StringOutOfRange {
                    type_id: 2,
                    offset: 7777,
                    ..
                }
            ),
            "{err}"
        );
        // A string section that does not end with NUL.
        let mut b = Builder::new();
        b.int("int", 4);
        b.strings.push(b'x');
        assert!(matches!(
            Btf::from_bytes(b.blob()).unwrap_err(),
            BtfError::MalformedStringSection
        ));
    }

    #[test]
    fn malformed_type_records() {
        // Trailing data of a struct past the end of the type section.
        let mut b = Builder::new();
        b.int("int", 4);
        b.ty("s", KIND_STRUCT, 1000, false, 4);
        b.members(&[("a", 1, 0)]);
        assert!(matches!(
            Btf::from_bytes(b.blob()).unwrap_err(),
            BtfError::TruncatedType { type_id: 2, .. }
        ));
        // A partial record.
        let mut b = Builder::new();
        b.int("int", 4);
        b.types.extend_from_slice(&[1, 2, 3]);
        assert!(matches!(
            Btf::from_bytes(b.blob()).unwrap_err(),
            BtfError::TruncatedType { type_id: 2, .. }
        ));
        // Unknown kinds.
        for kind in [0, 20, 31] {
            let mut b = Builder::new();
            b.ty("", kind, 0, false, 0);
            assert!(matches!(
                Btf::from_bytes(b.blob()).unwrap_err(),
                BtfError::UnknownKind { type_id: 1, .. }
            ));
        }
        // A reference to a type that does not exist.
        let mut b = Builder::new();
        b.ty("", KIND_PTR, 0, false, 42);
        assert!(matches!(
            Btf::from_bytes(b.blob()).unwrap_err(),
            BtfError::InvalidTypeId {
                type_id: 42,
                referenced_by: 1,
                count: 2
            }
        ));
    }

    #[test]
    fn cycles_give_errors() {
        let mut b = Builder::new();
        b.ty("a", KIND_TYPEDEF, 0, false, 2); // 1 -> 2
        b.ty("b", KIND_TYPEDEF, 0, false, 1); // 2 -> 1
        b.ty("s", KIND_STRUCT, 2, false, 8); // 3: struct s { a x; struct s (anonymous); }
        b.members(&[("x", 1, 0), ("", 3, 0)]);
        let btf = Btf::from_bytes(b.blob()).unwrap();
        assert!(matches!(btf.type_size(1), Err(BtfError::TooDeep { .. })));
        assert!(matches!(
            btf.struct_member("s", "x"),
            Err(BtfError::TooDeep { .. })
        ));
        assert!(matches!(
            btf.struct_member("s", "y"),
            Err(BtfError::TooDeep { .. })
        ));
        assert_eq!(btf.array_info(1), None);
        assert!(btf.func_proto_params("a").is_err());
    }

    #[test]
    fn an_enumerator_two_enums_disagree_on_is_ambiguous() {
        let mut b = Builder::new();
        for (e, v) in [("e1", 1), ("e2", 2), ("e3", 2)] {
            b.ty(e, KIND_ENUM, 1, false, 4);
            let opt = b.s("Opt_acl");
            b.words(&[opt, v]);
        }
        let btf = Btf::from_bytes(b.blob()).unwrap();
        assert!(matches!(
            btf.enumerator_value("Opt_acl"),
            Err(BtfError::AmbiguousEnumerator { .. })
        ));
        assert_eq!(btf.enum_value("e2", "Opt_acl"), Some(2));
    }

    /// Exercises the whole API on a parsed blob, ignoring results: must never panic.
    fn poke(btf: &Btf) {
        for id in 0..u32::try_from(btf.type_count()).unwrap() + 2 {
            let _ = (
                btf.type_size(id),
                btf.type_name(id),
                btf.array_info(id),
                btf.is_array_of_struct(id, "outer"),
            );
        }
        for m in ["a", "b", "c", "d", "p", "zz"] {
            let _ = btf.struct_member("outer", m);
        }
        let _ = (
            btf.enum_value("e", "Y"),
            btf.enumerator_value("Z"),
            btf.func_proto_params("f"),
            btf.has_func("f"),
        );
        let _ = (btf.func_proto_params("arr_t"), btf.struct_size("outer"));
    }

    #[test]
    fn mutated_blobs_never_panic() {
        let blob = sample().blob();
        for len in 0..blob.len() {
            if let Ok(btf) = Btf::from_bytes(blob[..len].to_vec()) {
                poke(&btf);
            }
        }
        // Deterministic pseudo-random byte flips (xorshift), many per round.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut parsed, rounds) = (0, 20_000);
        for _ in 0..rounds {
            let mut m = blob.clone();
            for _ in 0..=next() % 4 {
                let pos = usize::try_from(next() % u64::try_from(m.len()).unwrap()).unwrap();
                m[pos] = m[pos].wrapping_add(u8::try_from(next() % 255 + 1).unwrap());
            }
            if let Ok(btf) = Btf::from_bytes(m) {
                parsed += 1;
                poke(&btf);
            }
        }
        eprintln!("mutated blobs: {parsed} of {rounds} still parsed and were queried");
    }
}

//! Length-checked decoding of ring records.
//!
//! A record is read only after its header says what it is and the byte count agrees with that
//! type's size; a truncated, oversized or unknown record is a typed error, never an unchecked read.

use std::mem::size_of;

use oomtrace_common::{
    ContextRecord, ExitRecord, RECORD_VERSION, RecordHeader, VictimRecord, kind,
};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// A decoded ring record.
#[derive(Debug, Clone)]
pub enum Record {
    Victim(Box<VictimRecord>),
    Context(Box<ContextRecord>),
    Exit(ExitRecord),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {got} bytes is shorter than its {need}-byte header")]
    NotEnoughBytes { got: usize, need: usize },
    #[error(
        "record of kind {kind} says it has {declared} bytes, the ring gave {got}, the type has {expected}"
    )]
    SizeMismatch {
        kind: u16,
        declared: u32,
        got: usize,
        expected: usize,
    },
    #[error("record version {version} (this oomtrace reads version {RECORD_VERSION})")]
    UnsupportedVersion { version: u16 },
    #[error("unknown record kind {kind}")]
    UnknownKind { kind: u16 },
}

/// Copies a `T` out of `bytes` when the record's header and the ring agree with `T`'s size.
/// zerocopy's `FromBytes` proves at compile time that any bit pattern is a valid `T`; the copy
/// is unaligned (the ring gives no alignment guarantee beyond 8 bytes).
fn checked<T: FromBytes>(h: &RecordHeader, bytes: &[u8]) -> Result<T, DecodeError> {
    let expected = size_of::<T>();
    let mismatch = || DecodeError::SizeMismatch {
        kind: h.kind,
        declared: h.size,
        got: bytes.len(),
        expected,
    };
    if h.size as usize != expected {
        return Err(mismatch());
    }
    T::read_from_bytes(bytes).map_err(|_| mismatch())
}

/// Decodes one ring record.
pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
    let (h, _) =
        RecordHeader::read_from_prefix(bytes).map_err(|_| DecodeError::NotEnoughBytes {
            got: bytes.len(),
            need: size_of::<RecordHeader>(),
        })?;
    if h.version != RECORD_VERSION {
        return Err(DecodeError::UnsupportedVersion { version: h.version });
    }
    match h.kind {
        kind::VICTIM => Ok(Record::Victim(Box::new(checked(&h, bytes)?))),
        kind::CONTEXT => Ok(Record::Context(Box::new(checked(&h, bytes)?))),
        kind::EXIT => Ok(Record::Exit(checked(&h, bytes)?)),
        k => Err(DecodeError::UnknownKind { kind: k }),
    }
}

/// The bytes of a record, as the kernel side writes them (for tests and benchmarks).
pub fn as_bytes<T: IntoBytes + Immutable>(v: &T) -> &[u8] {
    v.as_bytes()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use oomtrace_common::{CgroupRef, hook, present};

    pub(crate) fn victim(pid: u32) -> VictimRecord {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"hog1");
        VictimRecord {
            header: RecordHeader {
                kind: kind::VICTIM,
                version: RECORD_VERSION,
                size: u32::try_from(size_of::<VictimRecord>()).unwrap(),
                boot_ns: 123,
            },
            present: present::PID | present::COMM,
            hook: hook::TRACEPOINT,
            pid,
            tgid: 0,
            uid: 0,
            oom_score_adj: 0,
            task_flags: 0,
            trigger_pid: 0,
            trigger_tgid: 0,
            ns_pid: 0,
            pid_ns_level: 0,
            context_seq: 0,
            total_vm_kb: 0,
            anon_rss_kb: 65024,
            file_rss_kb: 0,
            shmem_rss_kb: 0,
            pgtables_kb: 0,
            swap_kb: 0,
            limit_pages: 0,
            limit_usage_pages: 0,
            comm,
            trigger_comm: [0; 16],
            cgroup: CgroupRef::EMPTY,
            limit_cgroup: CgroupRef::EMPTY,
        }
    }

    #[test]
    fn good_record_round_trips() {
        let v = victim(2469);
        let Record::Victim(d) = decode(as_bytes(&v)).expect("decodes") else {
            panic!("not a victim")
        };
        assert_eq!(d.pid, 2469);
        assert_eq!(d.anon_rss_kb, 65024);
        assert_eq!(&d.comm[..4], b"hog1");
    }

    #[test]
    fn truncated_records_are_rejected() {
        let v = victim(1);
        let b = as_bytes(&v);
        assert_eq!(
            decode(&b[..3]).unwrap_err(),
            DecodeError::NotEnoughBytes { got: 3, need: 16 }
        );
        // Split anywhere after the header: a size mismatch, never a read past the end.
        for cut in [16, 17, b.len() / 2, b.len() - 1] {
            assert!(
                matches!(decode(&b[..cut]), Err(DecodeError::SizeMismatch { .. })),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn oversized_records_are_rejected() {
        let v = victim(1);
        let mut b = as_bytes(&v).to_vec();
        b.extend_from_slice(&[0; 8]);
        assert!(
            matches!(decode(&b), Err(DecodeError::SizeMismatch { got, .. }) if got == size_of::<VictimRecord>() + 8)
        );
        // A header that lies about its size is caught too.
        let mut v2 = victim(1);
        v2.header.size += 8;
        assert!(matches!(
            decode(as_bytes(&v2)),
            Err(DecodeError::SizeMismatch { .. })
        ));
    }

    #[test]
    fn exit_records_are_length_checked() {
        let e = ExitRecord {
            header: RecordHeader {
                kind: kind::EXIT,
                version: RECORD_VERSION,
                size: u32::try_from(size_of::<ExitRecord>()).unwrap(),
                boot_ns: 2_000,
            },
            pid: 7,
            tgid: 7,
            kill_boot_ns: 1_000,
        };
        let Record::Exit(d) = decode(as_bytes(&e)).expect("decodes") else {
            panic!("not an exit")
        };
        assert_eq!((d.pid, d.kill_boot_ns), (7, 1_000));
        let b = as_bytes(&e);
        assert!(matches!(
            decode(&b[..b.len() - 1]),
            Err(DecodeError::SizeMismatch { .. })
        ));
        // A victim-sized record labelled as an exit is refused, not read as one.
        let mut v = victim(1);
        v.header.kind = kind::EXIT;
        assert!(matches!(
            decode(as_bytes(&v)),
            Err(DecodeError::SizeMismatch { .. })
        ));
    }

    #[test]
    fn unknown_kind_and_version() {
        let mut v = victim(1);
        v.header.version = RECORD_VERSION + 1;
        assert_eq!(
            decode(as_bytes(&v)).unwrap_err(),
            DecodeError::UnsupportedVersion {
                version: RECORD_VERSION + 1
            }
        );
        let mut v = victim(1);
        v.header.kind = 99;
        assert_eq!(
            decode(as_bytes(&v)).unwrap_err(),
            DecodeError::UnknownKind { kind: 99 }
        );
    }
}

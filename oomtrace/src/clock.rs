//! Turning the kernel's `CLOCK_BOOTTIME` stamps into wall time.

use std::fmt::Write as _;

fn now_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; these clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &raw mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// `CLOCK_BOOTTIME` now, in nanoseconds (what `bpf_ktime_get_boot_ns` returns).
pub fn boot_ns_now() -> u64 {
    u64::try_from(now_ns(libc::CLOCK_BOOTTIME)).unwrap_or(0)
}

/// Unix-epoch nanoseconds of a `CLOCK_BOOTTIME` stamp, using the clocks' offset right now (so
/// a wall-clock step since boot is taken into account).
pub fn boot_to_unix_ns(boot_ns: u64) -> i128 {
    let offset = now_ns(libc::CLOCK_REALTIME) - now_ns(libc::CLOCK_BOOTTIME);
    offset + i128::from(boot_ns)
}

/// RFC 3339 in UTC with nanoseconds: `2026-11-25T06:12:15.123456789Z`.
pub fn rfc3339(unix_ns: i128) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(unix_ns) else {
        return String::from("1970-01-01T00:00:00.000000000Z");
    };
    let mut s = String::with_capacity(30);
    let _ = write!(
        s,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(1_795_587_135_000_000_007),
            "2026-11-25T06:12:15.000000007Z"
        );
    }

    #[test]
    fn boot_stamp_of_now_is_now() {
        let wall = now_ns(libc::CLOCK_REALTIME);
        let conv = boot_to_unix_ns(boot_ns_now());
        assert!((conv - wall).abs() < 50_000_000, "{conv} vs {wall}");
    }
}

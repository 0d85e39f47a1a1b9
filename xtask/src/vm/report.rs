//! What one boot carried out on ttyS1. The guest (tests/vm/init.sh, lib.sh) writes:
//!
//! ```text
//! @@vmtest boot uptime=1.53 kernel=6.1.0-56-cloud-amd64
//! @@vmtest begin SCENARIO
//! @@vmtest section NAME        (raw lines follow, up to the next @@vmtest line)
//! @@vmtest end SCENARIO rc=0 uptime=2.42
//! @@vmtest done
//! ```
//!
//! A section name may repeat within a scenario; its parts are concatenated (`info` holds
//! `KEY=VALUE` lines).

use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct BootReport {
    /// Uptime (s) when /init started writing.
    pub init_uptime: Option<f64>,
    /// `uname -r` of the guest.
    pub kernel: Option<String>,
    pub scenarios: BTreeMap<String, Scenario>,
    /// `@@vmtest done` seen: /init got to the end.
    pub done: bool,
}

#[derive(Debug, Default)]
pub struct Scenario {
    pub sections: BTreeMap<String, String>,
    /// The scenario script's exit status; `None` if its end marker never came.
    pub rc: Option<i32>,
    /// Uptime (s) when the previous scenario (or /init) ended.
    pub start_uptime: Option<f64>,
    pub end_uptime: Option<f64>,
}

impl Scenario {
    pub fn section(&self, name: &str) -> &str {
        self.sections.get(name).map_or("", String::as_str)
    }

    /// The last `KEY=VALUE` of section `info` with this key.
    pub fn info(&self, key: &str) -> Option<&str> {
        self.section("info")
            .lines()
            .rev()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    pub fn info_u64(&self, key: &str) -> Option<u64> {
        self.info(key).and_then(|v| v.trim().parse().ok())
    }

    pub fn info_i64(&self, key: &str) -> Option<i64> {
        self.info(key).and_then(|v| v.trim().parse().ok())
    }

    /// `KEY VALUE` lines (memory.events, vmstat) of a section.
    pub fn counter(&self, section: &str, key: &str) -> Option<u64> {
        self.section(section).lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok())?
        })
    }

    /// `Key:   123 kB` lines (/proc/meminfo) of a section, in kB.
    pub fn meminfo_kb(&self, section: &str, key: &str) -> Option<u64> {
        self.section(section).lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k == key).then(|| v.trim().trim_end_matches("kB").trim().parse().ok())?
        })
    }
}

fn uptime_field(words: &[&str]) -> Option<f64> {
    words
        .iter()
        .find_map(|w| w.strip_prefix("uptime="))
        .and_then(|v| v.parse().ok())
}

pub fn parse(text: &str) -> BootReport {
    let mut r = BootReport::default();
    let mut current: Option<String> = None;
    let mut section: Option<String> = None;
    let mut last_end: Option<f64> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("@@vmtest ") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            match words.as_slice() {
                ["boot", ..] => {
                    r.init_uptime = uptime_field(&words);
                    r.kernel = words
                        .iter()
                        .find_map(|w| w.strip_prefix("kernel="))
                        .map(str::to_owned);
                    last_end = r.init_uptime;
                }
                ["begin", name, ..] => {
                    let s = r.scenarios.entry((*name).to_owned()).or_default();
                    s.start_uptime = last_end;
                    current = Some((*name).to_owned());
                    section = None;
                }
                ["section", name] => section = Some((*name).to_owned()),
                ["end", name, ..] => {
                    if let Some(s) = r.scenarios.get_mut(*name) {
                        s.rc = words
                            .iter()
                            .find_map(|w| w.strip_prefix("rc="))
                            .and_then(|v| v.parse().ok());
                        s.end_uptime = uptime_field(&words);
                        last_end = s.end_uptime.or(last_end);
                    }
                    current = None;
                    section = None;
                }
                ["done"] => r.done = true,
                _ => {}
            }
            continue;
        }
        if let (Some(c), Some(sec)) = (&current, &section)
            && let Some(s) = r.scenarios.get_mut(c)
        {
            let buf = s.sections.entry(sec.clone()).or_default();
            buf.push_str(line);
            buf.push('\n');
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn frames() {
        let r = parse(
            "junk\n@@vmtest boot uptime=1.5 kernel=5.10.0-32-cloud-amd64\n@@vmtest begin a\n@@vmtest section info\nk=v=w\n\
             @@vmtest section memory.events:/a\noom 1\noom_kill 2\n@@vmtest section info\nn=3\n\
             @@vmtest end a rc=0 uptime=2.5\n@@vmtest begin b\n@@vmtest section x\npartial\n",
        );
        assert!(!r.done);
        assert_eq!(r.init_uptime, Some(1.5));
        assert_eq!(r.kernel.as_deref(), Some("5.10.0-32-cloud-amd64"));
        let a = &r.scenarios["a"];
        assert_eq!(a.rc, Some(0));
        assert_eq!(a.info("k"), Some("v=w"));
        assert_eq!(a.info_u64("n"), Some(3));
        assert_eq!(a.counter("memory.events:/a", "oom_kill"), Some(2));
        assert_eq!(a.counter("memory.events:/a", "oom"), Some(1));
        let b = &r.scenarios["b"];
        assert_eq!(b.rc, None);
        assert_eq!(b.section("x"), "partial\n");
    }
}

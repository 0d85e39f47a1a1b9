//! The userspace data path: ring bytes → decode → event → sinks.

use crate::{
    decode::{self, Record},
    event::Event,
    sink::Sinks,
};

/// Counts of what went through the pipeline.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub records: u64,
    pub victims: u64,
    pub decode_errors: u64,
}

pub struct Pipeline {
    node: String,
    pub sinks: Sinks,
    pub stats: Stats,
}

impl Pipeline {
    pub fn new(node: String, sinks: Sinks) -> Self {
        Self {
            node,
            sinks,
            stats: Stats::default(),
        }
    }

    /// Handles one ring record.
    pub fn handle(&mut self, bytes: &[u8]) {
        self.stats.records += 1;
        match decode::decode(bytes) {
            Ok(Record::Victim(v)) => {
                self.stats.victims += 1;
                let ev = Event::from_victim(&v, &self.node);
                self.sinks.emit(&ev);
            }
            Ok(Record::Context(_)) => {}
            Err(e) => {
                self.stats.decode_errors += 1;
                log::warn!("dropping a ring record: {e}");
            }
        }
    }
}

/// The node name for events: `$NODE_NAME` (set by the DaemonSet from the downward API), else the
/// kernel's hostname.
pub fn node_name() -> String {
    if let Ok(n) = std::env::var("NODE_NAME")
        && !n.is_empty()
    {
        return n;
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "unknown".into(), |s| s.trim().to_string())
}

//! Where events go: each sink writes every event; a failing sink is reported and counted, and the
//! others (and tracing) go on.

pub mod json;

use crate::event::Event;

/// A destination for events.
pub trait Sink: Send {
    /// Short name for logs and metrics (`json:stdout`, `text:stderr`, ...).
    fn name(&self) -> &str;
    /// Writes one event, flushed.
    fn emit(&mut self, ev: &Event) -> std::io::Result<()>;
}

/// Every configured sink.
#[derive(Default)]
pub struct Sinks {
    sinks: Vec<Box<dyn Sink>>,
    /// Failed writes, all sinks together.
    pub errors: u64,
}

impl Sinks {
    pub fn push(&mut self, s: Box<dyn Sink>) {
        self.sinks.push(s);
    }

    pub fn emit(&mut self, ev: &Event) {
        for s in &mut self.sinks {
            if let Err(e) = s.emit(ev) {
                self.errors += 1;
                log::warn!(
                    "sink {}: writing event of pid {}: {e}",
                    s.name(),
                    ev.victim.pid
                );
            }
        }
    }
}

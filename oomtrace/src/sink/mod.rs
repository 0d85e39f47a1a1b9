//! Where events go: each sink writes every event; a failing sink is reported and counted, and the
//! others (and tracing) go on.

pub mod file;
pub mod json;
pub mod metrics;
pub mod queue;
pub mod text;

use std::io::IsTerminal as _;

use crate::{
    config::{ConfigError, Format, OutputSpec, Target},
    event::Event,
};

/// The pod as people name it: `namespace/name`, else the name, else the UID.
pub fn pod_label(ev: &Event) -> Option<String> {
    let p = ev.owner.pod.as_ref()?;
    Some(match (&p.namespace, &p.name) {
        (Some(ns), Some(n)) => format!("{ns}/{n}"),
        (None, Some(n)) => n.clone(),
        _ => p.uid.clone(),
    })
}

/// The container's name, else the first 12 digits of its id.
pub fn container_label(ev: &Event) -> Option<String> {
    let c = ev.owner.container.as_ref()?;
    Some(
        c.name
            .clone()
            .unwrap_or_else(|| c.id.chars().take(12).collect()),
    )
}

/// True when colour may be used on this stream: a terminal, and `$NO_COLOR` unset.
pub fn color_for(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Opens one sink: files are created if missing and appended to, and follow rotation
/// ([`file::RotatingFile`]).
pub fn open(spec: &OutputSpec) -> Result<Box<dyn Sink>, ConfigError> {
    let name = spec.to_string();
    Ok(match (&spec.target, spec.format) {
        (Target::Stdout, Format::Json) => Box::new(json::JsonLines::new(name, std::io::stdout())),
        (Target::Stderr, Format::Json) => Box::new(json::JsonLines::new(name, std::io::stderr())),
        (Target::Stdout, Format::Text) => {
            let c = color_for(std::io::stdout().is_terminal());
            Box::new(text::TextLines::new(name, std::io::stdout(), c))
        }
        (Target::Stderr, Format::Text) => {
            let c = color_for(std::io::stderr().is_terminal());
            Box::new(text::TextLines::new(name, std::io::stderr(), c))
        }
        (Target::File(p), format) => {
            let f = file::RotatingFile::open(p).map_err(|source| ConfigError::Output {
                spec: name.clone(),
                path: p.clone(),
                source,
            })?;
            match format {
                Format::Json => Box::new(json::JsonLines::new(name, f)),
                Format::Text => Box::new(text::TextLines::new(name, f, false)),
            }
        }
    })
}

/// A destination for events.
pub trait Sink: Send {
    /// Short name for logs and metrics (`json:stdout`, `text:stderr`, ...).
    fn name(&self) -> &str;
    /// Writes one event, flushed.
    fn emit(&mut self, ev: &Event) -> std::io::Result<()>;
    /// [`Sink::emit`], except that a sink with a writer thread may hold the event back until
    /// [`Sink::release`] (the pipeline stamps the end of its own work in between). Default:
    /// `emit`.
    fn emit_held(&mut self, ev: &Event) -> std::io::Result<()> {
        self.emit(ev)
    }
    /// Hands over what [`Sink::emit_held`] held back.
    fn release(&mut self) {}
    /// Reports records the kernel side lost. Sinks that have no way to say it ignore it.
    fn lost(&mut self, _rec: &crate::event::Lost) -> std::io::Result<()> {
        Ok(())
    }
    /// Opens a file output again (`SIGHUP`, after log rotation); others ignore it.
    fn reopen(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    /// Failed writes this sink counted itself (a queued sink writes on its own thread).
    fn errors(&self) -> u64 {
        0
    }
    /// Finishes what is pending, waiting until `deadline` at most.
    fn close(&mut self, _deadline: std::time::Instant) {}
    /// Reports a victim's exit, or that it is slow to exit. Sinks that have no way to say it
    /// ignore it.
    fn exit(&mut self, _rec: &crate::exits::VictimExit) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every configured sink.
#[derive(Default)]
pub struct Sinks {
    all: Vec<Box<dyn Sink>>,
    /// Failed writes of the sinks called inline.
    errors: u64,
    /// Events dropped by queued sinks whose queue was full, all together: the metric
    /// `oomtrace_events_dropped_total{cause="sink_stalled"}`.
    pub stalled: prometheus_client::metrics::counter::Counter,
}

impl Sinks {
    /// A sink called inline by whoever drains (it must not block: metrics, tests, benches).
    pub fn push(&mut self, s: Box<dyn Sink>) {
        self.all.push(s);
    }

    /// A sink that writes (stdout, stderr, a file) on its own thread behind a queue of
    /// `capacity` events ([`queue::Queued`]).
    pub fn push_queued(
        &mut self,
        s: Box<dyn Sink>,
        capacity: usize,
        node: String,
    ) -> std::io::Result<()> {
        let q = queue::Queued::spawn(s, capacity, node, self.stalled.clone())?;
        self.all.push(Box::new(q));
        Ok(())
    }

    /// Failed writes, all sinks together.
    pub fn errors(&self) -> u64 {
        self.errors + self.all.iter().map(|s| s.errors()).sum::<u64>()
    }

    /// Lets every sink finish what it has queued, until `deadline` at most.
    pub fn close(&mut self, deadline: std::time::Instant) {
        for s in &mut self.all {
            s.close(deadline);
        }
    }

    pub fn lost(&mut self, rec: &crate::event::Lost) {
        for s in &mut self.all {
            if let Err(e) = s.lost(rec) {
                self.errors += 1;
                log::warn!("sink {}: writing a lost record: {e}", s.name());
            }
        }
    }

    /// Reopens every file output (`SIGHUP`).
    pub fn reopen(&mut self) {
        for s in &mut self.all {
            if let Err(e) = s.reopen() {
                self.errors += 1;
                log::warn!("sink {}: reopening: {e}", s.name());
            }
        }
    }

    pub fn exit(&mut self, rec: &crate::exits::VictimExit) {
        for s in &mut self.all {
            if let Err(e) = s.exit(rec) {
                self.errors += 1;
                log::warn!("sink {}: writing a {} line: {e}", s.name(), rec.kind);
            }
        }
    }

    pub fn emit(&mut self, ev: &Event) {
        self.emit_held(ev);
        self.release();
    }

    /// [`Sinks::emit`] in two steps, for the pipeline's stamps: inline sinks write now, the
    /// writer threads get the event at [`Sinks::release`].
    pub fn emit_held(&mut self, ev: &Event) {
        for s in &mut self.all {
            if let Err(e) = s.emit_held(ev) {
                self.errors += 1;
                log::warn!(
                    "sink {}: writing event of pid {}: {e}",
                    s.name(),
                    ev.victim.pid
                );
            }
        }
    }

    /// Hands the events held by [`Sinks::emit_held`] to the writer threads.
    pub fn release(&mut self) {
        for s in &mut self.all {
            s.release();
        }
    }
}

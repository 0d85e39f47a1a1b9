//! Where events go: each sink writes every event; a failing sink is reported and counted, and the
//! others (and tracing) go on.

pub mod json;
pub mod metrics;
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

/// Opens one sink: files are created if missing and appended to.
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
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|source| ConfigError::Output {
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
    /// Reports records the kernel side lost. Sinks that have no way to say it ignore it.
    fn lost(&mut self, _rec: &crate::event::Lost) -> std::io::Result<()> {
        Ok(())
    }
    /// Reports a victim's exit, or that it is slow to exit. Sinks that have no way to say it
    /// ignore it.
    fn exit(&mut self, _rec: &crate::exits::VictimExit) -> std::io::Result<()> {
        Ok(())
    }
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

    pub fn lost(&mut self, rec: &crate::event::Lost) {
        for s in &mut self.sinks {
            if let Err(e) = s.lost(rec) {
                self.errors += 1;
                log::warn!("sink {}: writing a lost record: {e}", s.name());
            }
        }
    }

    pub fn exit(&mut self, rec: &crate::exits::VictimExit) {
        for s in &mut self.sinks {
            if let Err(e) = s.exit(rec) {
                self.errors += 1;
                log::warn!("sink {}: writing a {} line: {e}", s.name(), rec.kind);
            }
        }
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

//! JSON lines: one object per victim, one line each, flushed per event.

use std::io::Write;

use super::{Sink, file::Out};
use crate::event::Event;

pub struct JsonLines<W: Write + Send> {
    name: String,
    out: W,
    buf: Vec<u8>,
}

impl<W: Write + Send> JsonLines<W> {
    pub fn new(name: impl Into<String>, out: W) -> Self {
        Self {
            name: name.into(),
            out,
            buf: Vec::with_capacity(1024),
        }
    }
}

impl<W: Out> Sink for JsonLines<W> {
    fn name(&self) -> &str {
        &self.name
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        self.out.reopen()
    }

    fn emit(&mut self, ev: &Event) -> std::io::Result<()> {
        self.line(ev)
    }

    fn lost(&mut self, rec: &crate::event::Lost) -> std::io::Result<()> {
        self.line(rec)
    }

    fn exit(&mut self, rec: &crate::exits::VictimExit) -> std::io::Result<()> {
        self.line(rec)
    }
}

impl<W: Write + Send> JsonLines<W> {
    fn line(&mut self, v: &impl serde::Serialize) -> std::io::Result<()> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, v)?;
        self.buf.push(b'\n');
        // One write per line so concurrent readers never see half a line.
        self.out.write_all(&self.buf)?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_event() {
        let mut out = Vec::new();
        let r = crate::decode::tests::victim(7);
        let sys = crate::event::System {
            page_size: 4096,
            ram_pages: 1 << 20,
            swap_pages: 0,
        };
        let ev = Event::from_victim(
            &r,
            None,
            false,
            &sys,
            &crate::kernel::gfp::GfpTable::builtin(),
            "node-a",
        );
        {
            let mut s = JsonLines::new("test", &mut out);
            s.emit(&ev).unwrap();
            s.emit(&ev).unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let mut out = Vec::new();
        JsonLines::new("t", &mut out)
            .lost(&crate::event::Lost::new("n", 3, 5))
            .unwrap();
        let l: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (l["kind"].as_str(), l["count"].as_u64(), l["total"].as_u64()),
            (Some("lost"), Some(3), Some(5))
        );
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["victim"]["pid"], 7);
        assert_eq!(v["node"], "node-a");
    }
}

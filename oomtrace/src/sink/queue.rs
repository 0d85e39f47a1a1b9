//! A writing sink (stdout, stderr, a file) on its own thread behind a bounded queue, so that a
//! blocked write (a stalled pipe or journald, a slow disk) never blocks the task that drains the
//! ring.
//!
//! The queue is counted in events (`queue_size`). When it is full, the new event is dropped and
//! counted: `oomtrace_events_dropped_total{cause="sink_stalled"}` at once, and a
//! `{"kind":"lost","cause":"sink_stalled",...}` line from the writer thread as soon as it has
//! written the next queued item (the line may follow events that were queued before the drops).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{Receiver, SyncSender, TrySendError, sync_channel},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use prometheus_client::metrics::counter::Counter;

use super::Sink;
use crate::event::{Event, Lost};

enum Msg {
    Event(Box<Event>),
    Lost(Box<Lost>),
    Exit(Box<crate::exits::VictimExit>),
    /// Wakes the writer; the request itself is [`Shared::reopen`].
    Reopen,
}

/// What the drain side and the writer thread share.
#[derive(Default)]
struct Shared {
    /// Dropped since the last `lost` line the writer wrote.
    dropped: AtomicU64,
    /// `lost` records (ring losses) that found the queue full: written after the next item.
    pending_lost: Mutex<Vec<Lost>>,
    reopen: AtomicBool,
    errors: AtomicU64,
}

/// The drain side of one queued sink.
pub struct Queued {
    name: String,
    tx: Option<SyncSender<Msg>>,
    shared: Arc<Shared>,
    /// All queued sinks' drops together (the metric).
    stalled: Counter,
    thread: Option<JoinHandle<()>>,
    /// Events [`Sink::emit_held`] copied, sent at [`Sink::release`].
    held: Vec<Event>,
}

impl Queued {
    /// Starts the writer thread of `sink` with a queue of `capacity` events; drops are also
    /// counted in `stalled`.
    pub fn spawn(
        mut sink: Box<dyn Sink>,
        capacity: usize,
        node: String,
        stalled: Counter,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(capacity);
        let shared = Arc::new(Shared::default());
        let name = sink.name().to_string();
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sink {name}"))
            .spawn(move || write_loop(sink.as_mut(), &rx, &s, &node))?;
        Ok(Self {
            name,
            tx: Some(tx),
            shared,
            stalled,
            thread: Some(thread),
            held: Vec::new(),
        })
    }

    /// Queues an event; when the queue is full, drops it and counts it.
    fn queue(&self, ev: Box<Event>) {
        if self.send(Msg::Event(ev)).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            self.stalled.inc();
        }
    }

    fn send(&self, msg: Msg) -> Result<(), Msg> {
        match &self.tx {
            Some(tx) => tx.try_send(msg).map_err(|e| match e {
                TrySendError::Full(m) | TrySendError::Disconnected(m) => m,
            }),
            None => Err(msg),
        }
    }

    /// Failed writes so far.
    pub fn errors(&self) -> u64 {
        self.shared.errors.load(Ordering::Relaxed)
    }
}

fn write_loop(sink: &mut dyn Sink, rx: &Receiver<Msg>, shared: &Shared, node: &str) {
    let mut dropped_total = 0u64;
    while let Ok(msg) = rx.recv() {
        if shared.reopen.swap(false, Ordering::Relaxed)
            && let Err(e) = sink.reopen()
        {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            log::warn!("sink {}: reopening: {e}", sink.name());
        }
        match msg {
            Msg::Event(ev) => {
                if let Err(e) = sink.emit(&ev) {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    log::warn!(
                        "sink {}: writing event of pid {}: {e}",
                        sink.name(),
                        ev.victim.pid
                    );
                }
            }
            Msg::Lost(rec) => write_lost(sink, shared, &rec),
            Msg::Exit(rec) => {
                if let Err(e) = sink.exit(&rec) {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    log::warn!("sink {}: writing a {} line: {e}", sink.name(), rec.kind);
                }
            }
            Msg::Reopen => {}
        }
        let pending = std::mem::take(
            &mut *shared
                .pending_lost
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for rec in &pending {
            write_lost(sink, shared, rec);
        }
        let n = shared.dropped.swap(0, Ordering::Relaxed);
        if n > 0 {
            dropped_total += n;
            log::warn!(
                "sink {}: {n} events dropped while it could not write (queue full; {dropped_total} since start)",
                sink.name()
            );
            let rec = Lost::sink_stalled(node, sink.name(), n, dropped_total);
            write_lost(sink, shared, &rec);
        }
    }
}

fn write_lost(sink: &mut dyn Sink, shared: &Shared, rec: &Lost) {
    if let Err(e) = sink.lost(rec) {
        shared.errors.fetch_add(1, Ordering::Relaxed);
        log::warn!("sink {}: writing a lost record: {e}", sink.name());
    }
}

impl Sink for Queued {
    fn name(&self) -> &str {
        &self.name
    }

    /// Queues the event; when the queue is full, drops it and counts it.
    fn emit(&mut self, ev: &Event) -> std::io::Result<()> {
        self.queue(Box::new(ev.clone()));
        Ok(())
    }

    /// Copies the event, and queues it at [`Sink::release`]: queueing wakes the writer, which
    /// may take the CPU from the drain at once; the drain stamps the end of its work first.
    fn emit_held(&mut self, ev: &Event) -> std::io::Result<()> {
        self.held.push(ev.clone());
        Ok(())
    }

    fn release(&mut self) {
        let mut held = std::mem::take(&mut self.held);
        for ev in held.drain(..) {
            self.queue(Box::new(ev));
        }
        // Keeps the allocation for the next event.
        self.held = held;
    }

    fn lost(&mut self, rec: &Lost) -> std::io::Result<()> {
        if let Err(Msg::Lost(rec)) = self.send(Msg::Lost(Box::new(rec.clone()))) {
            self.shared
                .pending_lost
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(*rec);
        }
        Ok(())
    }

    /// Queues the exit line; when the queue is full, drops it and counts it like an event.
    fn exit(&mut self, rec: &crate::exits::VictimExit) -> std::io::Result<()> {
        if self.send(Msg::Exit(Box::new(rec.clone()))).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            self.stalled.inc();
        }
        Ok(())
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        self.shared.reopen.store(true, Ordering::Relaxed);
        // Full: the writer is busy and sees the flag before its next item.
        let _ = self.send(Msg::Reopen);
        Ok(())
    }

    fn errors(&self) -> u64 {
        self.errors()
    }

    /// Lets the writer finish what is queued, waiting until `deadline` at most (a blocked
    /// output must not keep the daemon from exiting).
    fn close(&mut self, deadline: Instant) {
        self.release();
        self.tx = None;
        let Some(t) = self.thread.take() else { return };
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if t.is_finished() {
            let _ = t.join();
        } else {
            log::warn!(
                "sink {}: still blocked at exit: queued events were not written",
                self.name
            );
        }
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        // Closes the queue: the writer ends after what is queued (not waited for here).
        self.tx = None;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// A sink whose writes block until the test lets them through, then record the line.
    struct Gate {
        open: mpsc::Receiver<()>,
        out: Arc<Mutex<Vec<String>>>,
    }

    impl Sink for Gate {
        fn name(&self) -> &'static str {
            "gate"
        }
        fn emit(&mut self, ev: &Event) -> std::io::Result<()> {
            self.open.recv().map_err(std::io::Error::other)?;
            self.out
                .lock()
                .unwrap()
                .push(format!("pid {}", ev.victim.pid));
            Ok(())
        }
        fn lost(&mut self, rec: &Lost) -> std::io::Result<()> {
            self.out
                .lock()
                .unwrap()
                .push(format!("lost {} {} {}", rec.cause, rec.count, rec.total));
            Ok(())
        }
    }

    /// Records the pids it is given.
    struct Record(Arc<Mutex<Vec<u32>>>);

    impl Sink for Record {
        fn name(&self) -> &'static str {
            "record"
        }
        fn emit(&mut self, ev: &Event) -> std::io::Result<()> {
            self.0.lock().unwrap().push(ev.victim.pid);
            Ok(())
        }
    }

    /// A held event reaches the writer at `release`, not before: the drain's stamp comes first,
    /// and waking the writer cannot delay it.
    #[test]
    fn a_held_event_reaches_the_writer_at_release() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut q = Queued::spawn(
            Box::new(Record(seen.clone())),
            4,
            "n".into(),
            Counter::default(),
        )
        .unwrap();
        q.emit_held(&crate::testutil::event(1)).unwrap();
        q.emit_held(&crate::testutil::event(2)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(seen.lock().unwrap().is_empty(), "written before release");
        q.release();
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.lock().unwrap().len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(*seen.lock().unwrap(), [1, 2]);
        // Held and never released: `close` hands it over before the writer ends.
        q.emit_held(&crate::testutil::event(3)).unwrap();
        q.close(Instant::now() + Duration::from_secs(5));
        assert_eq!(*seen.lock().unwrap(), [1, 2, 3]);
    }

    #[test]
    fn a_blocked_sink_drops_past_its_queue_and_says_so() {
        let (open, gate) = mpsc::channel();
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = Gate {
            open: gate,
            out: out.clone(),
        };
        let stalled = Counter::default();
        let mut q = Queued::spawn(Box::new(sink), 2, "n".into(), stalled.clone()).unwrap();
        let t = Instant::now();
        // The writer takes event 1 and blocks in it; 2 and 3 fill the queue; 4 and 5 drop.
        q.emit(&crate::testutil::event(1)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        for pid in 2..=5 {
            q.emit(&crate::testutil::event(pid)).unwrap();
        }
        assert!(t.elapsed() < Duration::from_secs(1), "emit never blocks");
        assert_eq!(stalled.get(), 2);
        for _ in 0..3 {
            open.send(()).unwrap();
        }
        q.close(Instant::now() + Duration::from_secs(5));
        assert_eq!(
            *out.lock().unwrap(),
            ["pid 1", "lost sink_stalled 2 2", "pid 2", "pid 3"]
        );
    }
}

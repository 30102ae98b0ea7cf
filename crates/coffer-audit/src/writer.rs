//! [`AuditLog`]: appends events as JSON lines to `--audit-log-path` from a background thread,
//! adding the chain annotations and keeping the head file (format in [`crate::chain`]).
//!
//! # Back-pressure
//!
//! Request handlers hand events to a bounded channel ([`AuditLog::DEFAULT_CAPACITY`]) and go
//! on; one thread serializes, writes, syncs and updates the head, a batch at a time. When the
//! channel is full (the disk is slower than the request rate for a long while), `log` blocks
//! until there is room: an audit log that silently drops events is worse than a slower
//! server. Callers on an async runtime should expect this rare stall of one worker.
//!
//! # Durability
//!
//! Each batch is written with one `write`, then `fdatasync`, then the head is replaced
//! (its own fsync and rename). A crash can therefore leave (a) a fragment of a line, which is
//! cut off when the log is reopened, or (b) complete lines after the line the head names,
//! which chain correctly and are accepted (see [`crate::VerifyReport::lines_after_head`]).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::chain::{
    CHAIN_ANNOTATION, GENESIS, Head, SEQ_ANNOTATION, create_private, head_path,
    last_line_repairing_tail, line_hash, read_head, write_head,
};
use crate::event::Event;
use crate::level::Level;
use crate::verify::{VerifyError, check_head, scan};

/// Why the audit log could not be opened or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The log or head file could not be opened, read or created.
    #[error("audit log {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The existing log does not verify (or does not match its head file), so continuing its
    /// chain would hide the damage.
    #[error(
        "audit log {path} does not verify: {source}; run `coffer audit verify {path}`, keep the file as evidence and move it aside to start a new log"
    )]
    Damaged {
        /// The log.
        path: String,
        /// What is wrong.
        source: VerifyError,
    },
    /// The writer thread failed earlier (disk full, I/O error); later events are not written.
    #[error("audit log writer failed: {reason}")]
    WriterFailed {
        /// The first failure.
        reason: String,
    },
}

enum Message {
    Event(Box<Event>),
    Flush(mpsc::Sender<()>),
}

/// The audit log writer. Cheap to share behind an `Arc`; `log` and `flush` take `&self`.
/// Dropping it writes what is queued and stops the thread.
pub struct AuditLog {
    sender: Option<SyncSender<Message>>,
    thread: Option<JoinHandle<()>>,
    failure: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Events queued before `log` blocks.
    pub const DEFAULT_CAPACITY: usize = 10_000;

    /// Opens (or creates, mode 0600) the log at `path` and continues its chain; `-` writes to
    /// stdout without a head file. An existing log must match its head file, else
    /// [`AuditError::Damaged`].
    pub fn open(path: impl AsRef<Path>) -> Result<AuditLog, AuditError> {
        AuditLog::open_with_capacity(path, AuditLog::DEFAULT_CAPACITY)
    }

    /// [`AuditLog::open`] with a chosen channel capacity (at least 1).
    pub fn open_with_capacity(
        path: impl AsRef<Path>,
        capacity: usize,
    ) -> Result<AuditLog, AuditError> {
        let path = path.as_ref();
        let (sink, state) = if path == Path::new("-") {
            (Sink::Stdout, Head::genesis())
        } else {
            open_file(path)?
        };
        let (sender, receiver) = mpsc::sync_channel(capacity.max(1));
        let failure = Arc::new(Mutex::new(None));
        let thread_failure = Arc::clone(&failure);
        let thread = std::thread::Builder::new()
            .name("audit-log".to_owned())
            .spawn(move || run(receiver, sink, state, &thread_failure))
            .map_err(|source| AuditError::Open {
                path: path.display().to_string(),
                source,
            })?;
        Ok(AuditLog {
            sender: Some(sender),
            thread: Some(thread),
            failure,
        })
    }

    /// Queues an event; the writer adds `coffer.dev/seq` and `coffer.dev/chain` and applies
    /// [`Event::enforce_limits`]. Events at level `None` are not written. Blocks while the
    /// queue is full (see the module docs). Fails once the writer has failed.
    pub fn log(&self, event: Event) -> Result<(), AuditError> {
        self.check()?;
        self.send(Message::Event(Box::new(event)))
    }

    /// Waits until every event queued before this call is written and synced.
    pub fn flush(&self) -> Result<(), AuditError> {
        let (ack, done) = mpsc::channel();
        self.send(Message::Flush(ack))?;
        // The writer drops `ack` without answering only when it has stopped.
        let _ = done.recv();
        self.check()
    }

    /// Writes what is queued, stops the thread and reports a failure, if any.
    pub fn close(mut self) -> Result<(), AuditError> {
        self.shutdown();
        self.check()
    }

    fn send(&self, message: Message) -> Result<(), AuditError> {
        let sender = self.sender.as_ref().ok_or_else(stopped)?;
        sender.send(message).map_err(|_| stopped())
    }

    fn check(&self) -> Result<(), AuditError> {
        let failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        match &*failure {
            Some(reason) => Err(AuditError::WriterFailed {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn shutdown(&mut self) {
        drop(self.sender.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
            failure.get_or_insert_with(|| "the writer thread panicked".to_owned());
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn stopped() -> AuditError {
    AuditError::WriterFailed {
        reason: "the writer has stopped".to_owned(),
    }
}

enum Sink {
    Stdout,
    File { file: File, head: PathBuf },
}

/// Opens a log file, repairs a torn tail, and checks the last line against the head.
fn open_file(path: &Path) -> Result<(Sink, Head), AuditError> {
    let open_err = |p: &Path| {
        let p = p.display().to_string();
        move |source| AuditError::Open { path: p, source }
    };
    let head_file = head_path(path);
    let mut file = create_private(path, false).map_err(open_err(path))?;
    let (last, _cut) = last_line_repairing_tail(&mut file).map_err(open_err(path))?;
    let head = read_head(&head_file).map_err(open_err(&head_file))?;
    let damaged = |source| AuditError::Damaged {
        path: path.display().to_string(),
        source,
    };
    let state = match (last, head) {
        (None, None) => {
            let genesis = Head::genesis();
            write_head(&head_file, &genesis).map_err(open_err(&head_file))?;
            genesis
        }
        (Some(_), None) => {
            return Err(damaged(VerifyError::HeadMissing {
                path: head_file.display().to_string(),
            }));
        }
        (None, Some(head)) if head == Head::genesis() => head,
        (last, Some(head)) => {
            let quick = last.as_deref().and_then(|line| {
                let event: Event = serde_json::from_slice(line).ok()?;
                let seq = event.annotations.get(SEQ_ANNOTATION)?.parse().ok()?;
                Some(Head {
                    seq,
                    hash: line_hash(line),
                })
            });
            match quick {
                Some(found) if found == head => head,
                // The head lags (crash before its update) or something is wrong: read it all.
                _ => {
                    let scanned = scan(path, head.seq).map_err(damaged)?;
                    check_head(&scanned, &head).map_err(damaged)?;
                    let current = Head {
                        seq: scanned.last_seq,
                        hash: scanned.last_hash,
                    };
                    write_head(&head_file, &current).map_err(open_err(&head_file))?;
                    current
                }
            }
        }
    };
    Ok((
        Sink::File {
            file,
            head: head_file,
        },
        state,
    ))
}

/// Largest number of events written in one batch (one write, one sync, one head update).
const MAX_BATCH: usize = 1024;

/// The writer thread: one batch at a time until every sender is gone.
fn run(
    receiver: Receiver<Message>,
    mut sink: Sink,
    mut state: Head,
    failure: &Mutex<Option<String>>,
) {
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Ok(first) = receiver.recv() {
        let mut acks = Vec::new();
        buf.clear();
        let mut pending = Some(first);
        let mut taken = 0;
        while let Some(message) = pending.take() {
            match message {
                Message::Event(event) => append(&mut buf, &mut state, *event),
                Message::Flush(ack) => acks.push(ack),
            }
            taken += 1;
            if taken < MAX_BATCH {
                pending = receiver.try_recv().ok();
            }
        }
        let failed = failure.lock().unwrap_or_else(|p| p.into_inner()).is_some();
        // After a failure nothing more is written: the chain state may be ahead of the file.
        if !buf.is_empty()
            && !failed
            && let Err(e) = write_batch(&mut sink, &buf, &state)
        {
            let mut slot = failure.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| e.to_string());
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// Serializes one event as the next line of the chain into `buf`.
fn append(buf: &mut Vec<u8>, state: &mut Head, mut event: Event) {
    event.enforce_limits();
    if event.level == Level::None {
        return;
    }
    event
        .annotations
        .insert(SEQ_ANNOTATION.to_owned(), (state.seq + 1).to_string());
    event
        .annotations
        .insert(CHAIN_ANNOTATION.to_owned(), state.hash.clone());
    let start = buf.len();
    // An Event holds only strings, lists, maps and JSON values: serializing cannot fail.
    if serde_json::to_writer(&mut *buf, &event).is_err() {
        buf.truncate(start);
        return;
    }
    state.hash = line_hash(&buf[start..]);
    state.seq += 1;
    buf.push(b'\n');
    debug_assert_ne!(state.hash, GENESIS);
}

fn write_batch(sink: &mut Sink, buf: &[u8], state: &Head) -> io::Result<()> {
    match sink {
        Sink::Stdout => {
            let mut out = io::stdout().lock();
            out.write_all(buf)?;
            out.flush()
        }
        Sink::File { file, head } => {
            file.write_all(buf)?;
            file.sync_data()?;
            write_head(head, state)
        }
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
pub(crate) mod tests;

//! The embedded store's watch hub: a bounded in-memory window of recent events, fed by the
//! committer in revision order, and the set of live watchers.
//!
//! As in etcd's `watchable_store.go`, events come from the commit and slow readers never block
//! writers: each watcher has a bounded channel, and a watcher whose channel is full is cut off
//! (its stream ends with [`Error::WatchLagged`]) instead of making the committer wait.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;

use crate::contract::{Revision, WatchEvent};
use crate::error::{Error, Result};

/// How many live events a watcher may have queued before it is cut off.
pub(super) const WATCHER_QUEUE: usize = 4096;

/// The hub's state. Guarded by one mutex in `Shared`; the committer takes it once per commit
/// batch, watch registration takes it briefly. No other lock is taken while it is held.
pub(super) struct Hub {
    /// Recent events, oldest first, contiguous in revision.
    history: VecDeque<Arc<WatchEvent>>,
    /// Bytes of keys and values held in `history`.
    history_bytes: usize,
    max_events: usize,
    max_bytes: usize,
    /// Every event with revision >= `complete_from` is in `history`.
    complete_from: u64,
    /// The revision of the last event published (= the store's revision).
    last_revision: u64,
    watchers: Vec<Watcher>,
}

struct Watcher {
    prefix: Bytes,
    tx: mpsc::Sender<Arc<WatchEvent>>,
    lagged: Arc<AtomicBool>,
}

/// What a new watcher needs besides its live channel: the events it missed.
pub(super) enum CatchUp {
    /// Everything in `[start, last]` was in memory.
    Memory(Vec<Arc<WatchEvent>>),
    /// Events in `[start, last]` must be read from the file.
    File { start: u64, last: u64 },
}

impl Hub {
    pub fn new(revision: u64, max_events: usize, max_bytes: usize) -> Self {
        Hub {
            history: VecDeque::new(),
            history_bytes: 0,
            max_events,
            max_bytes,
            complete_from: revision + 1,
            last_revision: revision,
            watchers: Vec::new(),
        }
    }

    /// Appends one committed batch (in revision order) and fans it out. Watchers whose queue
    /// is full are cut off; watchers whose stream was dropped are forgotten.
    pub fn publish(&mut self, events: Vec<Arc<WatchEvent>>) {
        for event in events {
            let revision = event.revision().get();
            debug_assert_eq!(revision, self.last_revision + 1, "events arrive in order");
            self.last_revision = revision;
            self.watchers.retain(|w| {
                if !event.kv.key.starts_with(&w.prefix) {
                    return !w.tx.is_closed();
                }
                match w.tx.try_send(Arc::clone(&event)) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        w.lagged.store(true, Ordering::Release);
                        false
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                }
            });
            self.history_bytes += event_bytes(&event);
            self.history.push_back(event);
        }
        while self.history.len() > self.max_events || self.history_bytes > self.max_bytes {
            let Some(old) = self.history.pop_front() else {
                break;
            };
            self.history_bytes -= event_bytes(&old);
            self.complete_from = old.revision().get() + 1;
        }
    }

    /// Registers a watcher for `prefix` that wants events from `start` on, and says how to
    /// catch it up to the live feed.
    pub fn register(&mut self, prefix: Bytes, start: u64) -> (WatchStreamParts, Option<CatchUp>) {
        let (tx, rx) = mpsc::channel(WATCHER_QUEUE);
        let lagged = Arc::new(AtomicBool::new(false));
        self.watchers.push(Watcher {
            prefix: prefix.clone(),
            tx,
            lagged: Arc::clone(&lagged),
        });
        let parts = WatchStreamParts { rx, lagged };
        if start > self.last_revision {
            return (parts, None);
        }
        let catch_up = if start >= self.complete_from {
            let first = self.history.front().map_or(0, |e| e.revision().get());
            let skip = usize::try_from(start.saturating_sub(first)).unwrap_or(usize::MAX);
            CatchUp::Memory(
                self.history
                    .iter()
                    .skip(skip)
                    .filter(|e| e.kv.key.starts_with(&prefix))
                    .cloned()
                    .collect(),
            )
        } else {
            CatchUp::File {
                start,
                last: self.last_revision,
            }
        };
        (parts, Some(catch_up))
    }

    /// Ends every watcher's stream; used at shutdown.
    pub fn close_all(&mut self) {
        self.watchers.clear();
    }
}

fn event_bytes(e: &WatchEvent) -> usize {
    e.kv.key.len() + e.kv.value.len() + e.prev_kv.as_ref().map_or(0, |p| p.value.len())
}

/// The live half of a watch, handed out by [`Hub::register`].
pub(super) struct WatchStreamParts {
    rx: mpsc::Receiver<Arc<WatchEvent>>,
    lagged: Arc<AtomicBool>,
}

/// A watch: first the catch-up events, then the live channel, then a final error if the
/// watcher was cut off. Events before `start` (possible when a batch raced the registration)
/// are skipped.
pub(super) struct HubStream {
    pending: VecDeque<Result<WatchEvent>>,
    live: Option<WatchStreamParts>,
    next_revision: u64,
    done: bool,
}

impl HubStream {
    pub fn new(start: u64, catch_up: Vec<Result<WatchEvent>>, live: WatchStreamParts) -> Self {
        HubStream {
            pending: catch_up.into(),
            live: Some(live),
            next_revision: start,
            done: false,
        }
    }

    /// A stream that yields one error and ends.
    pub fn failed(err: Error) -> Self {
        HubStream {
            pending: VecDeque::from([Err(err)]),
            live: None,
            next_revision: u64::MAX,
            done: true,
        }
    }
}

impl Stream for HubStream {
    type Item = Result<WatchEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(item) = this.pending.pop_front() {
            if let Ok(e) = &item {
                this.next_revision = e.revision().get() + 1;
            }
            return Poll::Ready(Some(item));
        }
        let Some(live) = this.live.as_mut().filter(|_| !this.done) else {
            return Poll::Ready(None);
        };
        loop {
            match live.rx.poll_recv(cx) {
                Poll::Ready(Some(event)) => {
                    if event.revision().get() < this.next_revision {
                        continue;
                    }
                    this.next_revision = event.revision().get() + 1;
                    return Poll::Ready(Some(Ok(WatchEvent::clone(&event))));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    if live.lagged.load(Ordering::Acquire) {
                        return Poll::Ready(Some(Err(Error::WatchLagged)));
                    }
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The revision a watch with `start` begins at, given the current revision.
pub(super) fn effective_start(start: Revision, current: u64) -> u64 {
    if start == Revision::ZERO {
        current + 1
    } else {
        start.get()
    }
}

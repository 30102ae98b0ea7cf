//! Watches on etcd that survive a lost connection.
//!
//! A task owns the etcd watch and forwards events into a bounded channel. When the stream
//! breaks (member stopped, network cut), it opens a new watch from the revision after the last
//! event it forwarded, on whichever member answers, so the consumer sees every event exactly
//! once and in order. A start older than etcd's compaction ends the stream with
//! [`Error::Compacted`]. Dropping the stream stops the task.

use std::time::Duration;

use bytes::Bytes;
use etcd_client::{Client, EventType, WatchOptions};
use tokio::sync::mpsc;

use super::{convert_kv, map_err, prefix_end};
use crate::contract::{EventKind, KeyValue, Revision, WatchEvent, WatchStream};
use crate::error::{Error, Result};

/// Events buffered between the etcd stream and the consumer; when full, the task stops
/// reading from etcd until the consumer catches up (etcd itself keeps writers unblocked).
const QUEUE: usize = 1024;

/// Starts the watch task and returns the consumer's stream.
pub(super) fn spawn(client: Client, prefix: Bytes, start: Revision) -> WatchStream {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(run(client, prefix, start, tx));
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

async fn run(
    mut client: Client,
    prefix: Bytes,
    start: Revision,
    tx: mpsc::Sender<Result<WatchEvent>>,
) {
    let mut next = start;
    let mut backoff = Duration::from_millis(50);
    loop {
        let options = WatchOptions::new()
            .with_range(prefix_end(&prefix))
            .with_start_revision(i64::try_from(next.get()).unwrap_or(i64::MAX))
            .with_prev_key();
        let key = if prefix.is_empty() {
            vec![0]
        } else {
            prefix.to_vec()
        };
        let opened = tokio::select! {
            opened = client.watch(key, Some(options)) => opened,
            () = tx.closed() => return,
        };
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(e) => {
                let err = map_err(e);
                if !matches!(err, Error::Unavailable(_)) {
                    let _ = tx.send(Err(err)).await;
                    return;
                }
                tracing::debug!(error = %err, next = %next, "etcd watch: reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        loop {
            let message = tokio::select! {
                message = stream.message() => message,
                () = tx.closed() => return,
            };
            let response = match message {
                Ok(Some(response)) => response,
                Ok(None) | Err(_) => break,
            };
            backoff = Duration::from_millis(50);
            if response.compact_revision() > 0 {
                let compacted =
                    Revision::new(u64::try_from(response.compact_revision()).unwrap_or(0));
                let _ = tx
                    .send(Err(Error::Compacted {
                        requested: next,
                        compacted,
                    }))
                    .await;
                return;
            }
            for event in response.events() {
                let Some(kv) = event.kv().cloned().map(convert_kv) else {
                    continue;
                };
                let kind = match event.event_type() {
                    EventType::Put => EventKind::Put,
                    EventType::Delete => EventKind::Delete,
                };
                let kv = match kind {
                    EventKind::Put => kv,
                    EventKind::Delete => KeyValue {
                        value: Bytes::new(),
                        create_revision: Revision::ZERO,
                        version: 0,
                        ..kv
                    },
                };
                next = kv.mod_revision.next();
                let prev_kv = event.prev_kv().cloned().map(convert_kv);
                if tx.send(Ok(WatchEvent { kind, kv, prev_kv })).await.is_err() {
                    return;
                }
            }
            if response.canceled() {
                // Cancelled without compaction (e.g. the member lost its leader): resume.
                break;
            }
        }
        tracing::debug!(next = %next, "etcd watch stream ended; resuming");
        tokio::time::sleep(backoff).await;
    }
}

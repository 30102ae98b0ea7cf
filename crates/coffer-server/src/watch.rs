//! WATCH (`reference/k8s-api.md` §12.3): newline-delimited JSON events over a chunked
//! response, from a storage watch, with selectors evaluated per event.
//!
//! Start: no `resourceVersion` (or `"0"`) sends a synthetic `ADDED` per current object, then
//! live changes; `resourceVersion=N` sends every change after N. A compacted N gives one
//! `ERROR` event carrying a 410 `Expired` Status, then the stream ends.

use std::time::Duration;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use coffer_storage::{EventKind, Revision, WatchEvent};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::kinds::ApiKind;
use crate::negotiate::Output;
use crate::registry::ListRequest;
use crate::state::AppState;
use crate::status::{ApiError, ApiResult};
use crate::withhold::Redactor;

/// A predicate over objects (label and field selectors).
pub type Filter<K> = Box<dyn Fn(&K) -> bool + Send + Sync>;

/// Default watch length when the client gives no `timeoutSeconds` (kube-apiserver picks
/// 30–60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// What a watch request asked for.
pub struct WatchRequest<'a> {
    /// `resourceVersion`: start after this revision (absent or `0`: current state first).
    pub resource_version: Option<&'a str>,
    /// `timeoutSeconds`.
    pub timeout_seconds: Option<u64>,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// JSON objects or Table rows.
    pub output: Output,
}

/// Serves a watch on `K` in `namespace` (or all).
pub async fn serve<K: ApiKind>(
    state: &AppState,
    namespace: Option<&str>,
    request: WatchRequest<'_>,
    filter: Filter<K>,
    redactor: Option<Redactor>,
) -> ApiResult<Response> {
    let WatchRequest {
        resource_version,
        timeout_seconds,
        bookmarks,
        output,
    } = request;
    let mut initial = Vec::new();
    let start = match resource_version.filter(|rv| !rv.is_empty() && *rv != "0") {
        Some(rv) => Revision::new(
            rv.parse::<u64>()
                .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv:?}")))?
                + 1,
        ),
        None => {
            let page = state
                .list::<K>(
                    namespace,
                    &ListRequest {
                        limit: 0,
                        start_after: None,
                        filter: &|o| filter(o),
                    },
                )
                .await?;
            for obj in page.items {
                initial.push(("ADDED", obj));
            }
            page.revision.next()
        }
    };
    let prefix = state.prefix_of::<K>(namespace);
    let events = state.store.watch(&prefix, start).await?;
    let timeout = timeout_seconds.map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    let state = state.clone();
    let encoder = Encoder {
        output,
        headers_sent: false,
        redactor,
    };
    let body = async_stream(state, initial, events, filter, encoder, timeout, bookmarks);
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

/// Turns objects into event lines, as JSON objects or one-row Tables.
struct Encoder {
    output: Output,
    headers_sent: bool,
    /// Withholds Secret values the watcher may not `get` (`withhold.rs`).
    redactor: Option<Redactor>,
}

impl Encoder {
    fn line<K: ApiKind>(&mut self, kind: &str, obj: &K) -> bytes::Bytes {
        let withheld;
        let obj = match &self.redactor {
            Some(r) if !r.may_get(obj) => {
                let mut copy = obj.clone();
                copy.withhold_values();
                withheld = copy;
                &withheld
            }
            _ => obj,
        };
        let object = match self.output {
            Output::Json => serde_json::to_value(obj).unwrap_or(Value::Null),
            Output::Table(v) => {
                let t = crate::table::table(
                    std::slice::from_ref(obj),
                    v,
                    json!({}),
                    !self.headers_sent,
                );
                self.headers_sent = true;
                t
            }
        };
        event_line(kind, object)
    }
}

fn event_line(kind: &str, object: Value) -> bytes::Bytes {
    let mut bytes =
        serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    bytes.push(b'\n');
    bytes::Bytes::from(bytes)
}

type Chunk = Result<bytes::Bytes, std::io::Error>;

fn async_stream<K: ApiKind>(
    state: AppState,
    initial: Vec<(&'static str, K)>,
    events: coffer_storage::WatchStream,
    filter: Filter<K>,
    mut encoder: Encoder,
    timeout: Duration,
    bookmarks: bool,
) -> impl futures::Stream<Item = Chunk> + Send {
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(64);
    let version = crate::kinds::current_served_version().unwrap_or_default();
    tokio::spawn(crate::kinds::served_version(version, async move {
        for (kind, obj) in &initial {
            if tx.send(Ok(encoder.line(kind, obj))).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut events = events;
        let mut bookmark = tokio::time::interval(Duration::from_secs(60));
        bookmark.tick().await;
        let mut last = Revision::ZERO;
        loop {
            let item = tokio::select! {
                item = events.next() => item,
                () = &mut deadline => return,
                () = tx.closed() => return,
                _ = bookmark.tick(), if bookmarks && last != Revision::ZERO => {
                    let object = json!({"kind": K::kind(), "apiVersion": K::api_version(),
                        "metadata": {"resourceVersion": last.to_string(), "creationTimestamp": null}});
                    if tx.send(Ok(event_line("BOOKMARK", object))).await.is_err() { return; }
                    continue;
                }
            };
            let line = match item {
                None => return,
                Some(Err(e)) => {
                    let status = ApiError::from(e).status();
                    let _ = tx.send(Ok(event_line("ERROR", status))).await;
                    return;
                }
                Some(Ok(event)) => {
                    last = event.revision();
                    match translate(&state, &event, &filter).await {
                        Ok(Some((kind, obj))) => encoder.line(kind, &obj),
                        Ok(None) => continue,
                        Err(e) => {
                            let _ = tx.send(Ok(event_line("ERROR", e.status()))).await;
                            return;
                        }
                    }
                }
            };
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
    }));
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
}

/// The API event for a storage event, given the selector: an object that starts matching is
/// `ADDED`, one that stops matching is `DELETED`.
async fn translate<K: ApiKind>(
    state: &AppState,
    event: &WatchEvent,
    filter: &Filter<K>,
) -> ApiResult<Option<(&'static str, K)>> {
    let old: Option<K> = match &event.prev_kv {
        Some(prev) => Some(state.decode(prev).await?),
        None => None,
    };
    let old_matches = old.as_ref().is_some_and(filter);
    match event.kind {
        EventKind::Delete => {
            let Some(mut obj) = old.filter(|_| old_matches) else {
                return Ok(None);
            };
            obj.metadata_mut().resource_version = Some(event.revision().to_string());
            Ok(Some(("DELETED", obj)))
        }
        EventKind::Put => {
            let new: K = state.decode(&event.kv).await?;
            let new_matches = filter(&new);
            Ok(match (old_matches, new_matches) {
                (false, true) if old.is_none() => Some(("ADDED", new)),
                (false, true) => Some(("ADDED", new)),
                (true, true) => Some(("MODIFIED", new)),
                (true, false) => {
                    let mut gone = new;
                    gone.metadata_mut().resource_version = Some(event.revision().to_string());
                    Some(("DELETED", gone))
                }
                (false, false) => None,
            })
        }
    }
}

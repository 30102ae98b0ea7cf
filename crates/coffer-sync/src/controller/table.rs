//! `coffer sync status`: one row per ExternalSecret, from what its status says (the
//! `Ready` condition and `refreshTime`) and its refresh settings. Pure, so the table is
//! tested without a server.
//!
//! NEXT SYNC follows the controller's schedule: refreshes align to multiples of
//! `refreshInterval` since the Unix epoch, so the next one is the first boundary after
//! the last sync. After a failure the controller retries sooner (5 s doubling to 5 min);
//! the row then says `retrying`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::types::{ExternalSecret, RefreshPolicy};

/// One row of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusRow {
    /// The ExternalSecret's namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `Kind/name` of the store it reads.
    pub store: String,
    /// `True`, `False` or `Unknown` (never synced).
    pub ready: String,
    /// When it last synced successfully, as an age (`12s ago`), or `never`.
    pub last_sync: String,
    /// When it syncs next (`in 48s`), `due`, `on change`, `retrying` or `-` (never synced).
    pub next_sync: String,
    /// The Ready condition's message when it is not True (never a value).
    pub error: String,
}

impl StatusRow {
    /// The row for `es` at `now`.
    pub fn new(es: &ExternalSecret, now: SystemTime) -> Self {
        let ready = es.ready_condition();
        let ready_text = ready.map_or("Unknown", |c| c.status.as_str()).to_owned();
        let last = es
            .status
            .as_ref()
            .and_then(|s| s.refresh_time.as_ref())
            .map(|t| SystemTime::from(t.0));
        let interval = es.spec.refresh_interval.as_duration();
        let next_sync = if ready_text == "False" {
            "retrying".to_owned()
        } else if es.spec.refresh_policy != RefreshPolicy::Periodic || interval.is_zero() {
            "on change".to_owned()
        } else {
            match last {
                Some(last) => match next_boundary(last, interval) {
                    next if next <= now => "due".to_owned(),
                    next => relative(next, now),
                },
                None => "-".to_owned(),
            }
        };
        let store = &es.spec.secret_store_ref;
        StatusRow {
            namespace: es.namespace().to_owned(),
            name: es.name().to_owned(),
            store: format!("{:?}/{}", store.kind, store.name),
            ready: ready_text,
            last_sync: last.map_or_else(|| "never".to_owned(), |t| relative(t, now)),
            next_sync,
            error: ready
                .filter(|c| c.status != "True")
                .and_then(|c| c.message.clone())
                .unwrap_or_default(),
        }
    }
}

/// The first multiple of `interval` since the epoch after `t`.
fn next_boundary(t: SystemTime, interval: Duration) -> SystemTime {
    let secs = interval.as_secs().max(1);
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    UNIX_EPOCH + Duration::from_secs((since / secs + 1) * secs)
}

/// `12s ago`, `in 3m4s`, `now`.
fn relative(t: SystemTime, now: SystemTime) -> String {
    match t.duration_since(now) {
        Ok(ahead) if ahead.as_secs() > 0 => format!("in {}", short(ahead)),
        Ok(_) => "now".to_owned(),
        Err(e) => format!("{} ago", short(e.duration())),
    }
}

/// kubectl's age style: `45s`, `3m4s`, `2h5m`, `3d4h`.
fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

/// The table, with a header, columns padded as kubectl pads them (three spaces apart).
pub fn render_table(rows: &[StatusRow]) -> String {
    let header = [
        "NAMESPACE",
        "NAME",
        "STORE",
        "READY",
        "LAST SYNC",
        "NEXT SYNC",
        "ERROR",
    ];
    let cells: Vec<[&str; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.namespace.as_str(),
                &r.name,
                &r.store,
                &r.ready,
                &r.last_sync,
                &r.next_sync,
                &r.error,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&cells) {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            line.push_str(c);
            if i + 1 < row.len() {
                line.push_str(&" ".repeat(w - c.chars().count() + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es(status: serde_json::Value, interval: &str) -> ExternalSecret {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db", "namespace": "app"},
            "spec": {"refreshInterval": interval, "secretStoreRef": {"name": "aws"}},
            "status": status,
        }))
        .expect("valid")
    }

    #[test]
    fn rows_from_status() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000_030);
        let synced = es(
            serde_json::json!({"refreshTime": "2001-09-09T01:46:40Z",
                "conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced", "message": "secret synced"}]}),
            "1h",
        );
        let row = StatusRow::new(&synced, now);
        assert_eq!(row.ready, "True");
        assert_eq!(row.store, "SecretStore/aws");
        assert_eq!(row.last_sync, "30s ago");
        // Synced at 1_000_000_000 s; the next multiple of 3600 s is 1_000_000_800.
        assert_eq!(row.next_sync, "in 12m50s");
        assert_eq!(row.error, "");
        let overdue = StatusRow::new(&synced, now + Duration::from_secs(3600));
        assert_eq!(overdue.next_sync, "due");

        let failing = es(
            serde_json::json!({"conditions": [{"type": "Ready", "status": "False",
                "reason": "SecretSyncedError", "message": "aws: unavailable"}]}),
            "1h",
        );
        let row = StatusRow::new(&failing, now);
        assert_eq!(
            (
                row.ready.as_str(),
                row.last_sync.as_str(),
                row.next_sync.as_str()
            ),
            ("False", "never", "retrying")
        );
        assert_eq!(row.error, "aws: unavailable");

        let fresh = es(serde_json::Value::Null, "0");
        let row = StatusRow::new(&fresh, now);
        assert_eq!(
            (row.ready.as_str(), row.next_sync.as_str()),
            ("Unknown", "on change")
        );
    }

    #[test]
    fn table_is_aligned_with_a_header() {
        let row = StatusRow {
            namespace: "app".into(),
            name: "db".into(),
            store: "SecretStore/aws".into(),
            ready: "True".into(),
            last_sync: "3s ago".into(),
            next_sync: "in 57s".into(),
            error: String::new(),
        };
        let t = render_table(&[row]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "NAMESPACE   NAME   STORE             READY   LAST SYNC   NEXT SYNC   ERROR"
        );
        assert_eq!(
            lines[1],
            "app         db     SecretStore/aws   True    3s ago      in 57s"
        );
    }
}

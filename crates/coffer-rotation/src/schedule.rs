//! When rotations are due: the next time from an interval or a cron expression and the last
//! rotation, held back by the previous value's grace period; [`Scheduler`], which orders
//! many rotations with the overdue ones first (for `coffer rotate status` and the controller's
//! wake-ups); and the [`RotationMetrics`] counters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use croner::Cron;
use jiff::{SignedDuration, Timestamp};

use crate::error::SpecError;
use crate::spec::Schedule;
use crate::state::RotationStatus;

/// Parses a five-field cron expression (`minute hour day-of-month month day-of-week`, with
/// ranges, lists, steps, names and the `@daily`-style nicknames). Times are UTC.
pub fn parse_cron(expr: &str) -> Result<Cron, SpecError> {
    Cron::new(expr).parse().map_err(|e| {
        SpecError::invalid(
            "schedule.cron",
            format!("{e}; write five fields: minute hour day-of-month month day-of-week, e.g. \"0 3 * * *\""),
        )
    })
}

/// When the rotation with `status` is next due: `since` (its creation) when it never rotated,
/// else the schedule's next time after the last rotation; never before the previous value's
/// grace period ends (rotating then would invalidate it: vault#18738).
pub fn next_rotation(
    schedule: &Schedule,
    status: &RotationStatus,
    since: Timestamp,
) -> Result<Timestamp, SpecError> {
    let next = match (status.last_rotation_time, schedule) {
        (None, _) => since,
        (Some(last), Schedule::Interval(d)) => {
            let d = SignedDuration::try_from(d.get()).unwrap_or(SignedDuration::MAX);
            last.checked_add(d).unwrap_or(Timestamp::MAX)
        }
        (Some(last), Schedule::Cron(expr)) => {
            let cron = parse_cron(expr)?;
            let from = to_chrono(last);
            let at = cron.find_next_occurrence(&from, false).map_err(|e| {
                SpecError::invalid("schedule.cron", format!("has no next occurrence: {e}"))
            })?;
            from_chrono(at)
        }
    };
    Ok(match status.previous_valid_until {
        Some(until) if until > next => until,
        _ => next,
    })
}

fn to_chrono(t: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().max(0) as u32)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn from_chrono(t: DateTime<Utc>) -> Timestamp {
    Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos() as i32).unwrap_or(Timestamp::MAX)
}

/// One rotation's place in the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueEntry {
    /// The rotation's name.
    pub name: String,
    /// When it is due.
    pub next_due: Timestamp,
    /// How long ago it became due; `None` when it is not due yet.
    pub overdue_by: Option<SignedDuration>,
}

/// Next due times of many rotations.
#[derive(Clone, Debug, Default)]
pub struct Scheduler {
    next: BTreeMap<String, Timestamp>,
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets when rotation `name` is next due.
    pub fn set(&mut self, name: impl Into<String>, next_due: Timestamp) {
        self.next.insert(name.into(), next_due);
    }

    /// Forgets rotation `name`.
    pub fn remove(&mut self, name: &str) {
        self.next.remove(name);
    }

    /// Every rotation, most overdue first, then the upcoming ones soonest first (ties by name).
    pub fn plan(&self, now: Timestamp) -> Vec<DueEntry> {
        let mut all: Vec<DueEntry> = self
            .next
            .iter()
            .map(|(name, at)| DueEntry {
                name: name.clone(),
                next_due: *at,
                overdue_by: (*at <= now).then(|| now.duration_since(*at)),
            })
            .collect();
        all.sort_by(|a, b| {
            a.next_due
                .cmp(&b.next_due)
                .then_with(|| a.name.cmp(&b.name))
        });
        all
    }

    /// The rotations due at `now`, most overdue first.
    pub fn due(&self, now: Timestamp) -> Vec<DueEntry> {
        let mut plan = self.plan(now);
        plan.retain(|e| e.overdue_by.is_some());
        plan
    }

    /// When the next rotation falls due (to sleep until then).
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        self.next.values().min().copied()
    }
}

// Counters the server can expose (Prometheus names on the snapshot's fields). Plain atomics:
// no registry, no allocation, shareable through an `Arc`.

/// Rotation counters.
#[derive(Debug, Default)]
pub struct RotationMetrics {
    rotations: AtomicU64,
    failures: AtomicU64,
    rollbacks: AtomicU64,
    resumes: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// `coffer_rotation_rotations_total`: rotations that finished.
    pub rotations: u64,
    /// `coffer_rotation_failures_total`: failed attempts (rolled back, or a step left to retry).
    pub failures: u64,
    /// `coffer_rotation_rollbacks_total`: rotations rolled back.
    pub rollbacks: u64,
    /// `coffer_rotation_resumes_total`: in-flight rotations resumed after an interruption.
    pub resumes: u64,
}

impl RotationMetrics {
    /// The current values.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            rotations: self.rotations.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            rollbacks: self.rollbacks.load(Ordering::Relaxed),
            resumes: self.resumes.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn count_rotation(&self) {
        self.rotations.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_rollback(&self) {
        self.rollbacks.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_resume(&self) {
        self.resumes.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn rotated_at(last: &str) -> RotationStatus {
        RotationStatus {
            last_rotation_time: Some(ts(last)),
            ..RotationStatus::default()
        }
    }

    #[test]
    fn interval_from_last_rotation() {
        let s = Schedule::Interval("24h".parse().expect("duration"));
        let created = ts("2026-01-01T00:00:00Z");
        assert_eq!(
            next_rotation(&s, &RotationStatus::default(), created).expect("next"),
            created
        );
        let next = next_rotation(&s, &rotated_at("2026-01-05T10:30:00Z"), created).expect("next");
        assert_eq!(next, ts("2026-01-06T10:30:00Z"));
    }

    #[test]
    fn cron_next_occurrence_in_utc() {
        let s = Schedule::Cron("0 3 * * *".into());
        let created = ts("2026-01-01T00:00:00Z");
        let next = next_rotation(&s, &rotated_at("2026-01-05T03:00:00Z"), created).expect("next");
        assert_eq!(next, ts("2026-01-06T03:00:00Z"));
        let next = next_rotation(&s, &rotated_at("2026-01-05T02:59:59Z"), created).expect("next");
        assert_eq!(next, ts("2026-01-05T03:00:00Z"));
        // Mondays at 04:30; 2026-01-05 is a Monday.
        let s = Schedule::Cron("30 4 * * MON".into());
        let next = next_rotation(&s, &rotated_at("2026-01-05T05:00:00Z"), created).expect("next");
        assert_eq!(next, ts("2026-01-12T04:30:00Z"));
        assert!(parse_cron("61 * * * *").is_err());
        assert!(parse_cron("every day").is_err());
    }

    #[test]
    fn grace_period_holds_the_next_rotation_back() {
        let s = Schedule::Interval("1h".parse().expect("duration"));
        let mut status = rotated_at("2026-01-05T10:00:00Z");
        status.previous_valid_until = Some(ts("2026-01-05T12:00:00Z"));
        let next = next_rotation(&s, &status, ts("2026-01-01T00:00:00Z")).expect("next");
        assert_eq!(next, ts("2026-01-05T12:00:00Z"));
    }

    #[test]
    fn plan_puts_the_most_overdue_first() {
        let now = ts("2026-01-05T12:00:00Z");
        let mut sch = Scheduler::new();
        sch.set("later", ts("2026-01-05T13:00:00Z"));
        sch.set("soon", ts("2026-01-05T12:10:00Z"));
        sch.set("late", ts("2026-01-05T11:00:00Z"));
        sch.set("very-late", ts("2026-01-04T12:00:00Z"));
        let plan = sch.plan(now);
        let names: Vec<_> = plan.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["very-late", "late", "soon", "later"]);
        assert_eq!(plan[0].overdue_by, Some(SignedDuration::from_hours(24)));
        assert_eq!(plan[2].overdue_by, None);
        let due: Vec<_> = sch.due(now).into_iter().map(|e| e.name).collect();
        assert_eq!(due, ["very-late", "late"]);
        assert_eq!(sch.next_wakeup(), Some(ts("2026-01-04T12:00:00Z")));
        sch.remove("very-late");
        assert_eq!(sch.due(now).len(), 1);
    }
}

//! The `Age` column of Table output (`reference/k8s-api.md` §7.2): apimachinery's
//! `HumanDuration`, and `<unknown>` for a missing creation timestamp.
//!
//! Ranges (each value truncated toward zero): below −1 s `<invalid>`; below 0 `0s`; below 2 min
//! `Ns`; below 10 min `Mm` or `MmSs`; below 3 h `Mm`; below 8 h `Hh` or `HhMm`; below 48 h `Hh`;
//! below 8 d `Dd` or `DdHh`; below 2 y `Dd`; below 8 y `Yy` or `YyDd`; else `Yy` (a year is 365
//! days).

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// Go's zero `time.Time` (0001-01-01T00:00:00Z) in Unix seconds; printed as `<unknown>`.
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// `HumanDuration` of a non-negative duration, e.g. `90s`, `5m30s`, `3h`, `2d4h`, `3y2d`.
pub fn human_duration(d: Duration) -> String {
    human_duration_nanos(i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// The `Age` cell for an object created at `created`, seen at `now`: `<unknown>` when there is
/// no timestamp (or Go's zero time), otherwise [`human_duration`] of `now − created`, where a
/// creation time more than a second in the future prints `<invalid>` and a smaller skew `0s`.
pub fn age(created: Option<Timestamp>, now: Timestamp) -> String {
    match created {
        Some(t) if t.as_second() != GO_ZERO_TIME_SECONDS || t.subsec_nanosecond() != 0 => {
            human_duration_nanos(now.as_nanosecond() - t.as_nanosecond())
        }
        _ => "<unknown>".to_owned(),
    }
}

/// `HumanDuration` over a signed nanosecond count.
fn human_duration_nanos(nanos: i128) -> String {
    let seconds = nanos / NANOS_PER_SECOND;
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return with_remainder(minutes, "m", seconds % 60, "s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return with_remainder(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return with_remainder(days, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return with_remainder(years, "y", days % 365, "d");
    }
    format!("{years}y")
}

/// `<big><unit>` or `<big><unit><small><small_unit>` when `small` is non-zero.
fn with_remainder(big: i128, unit: &str, small: i128, small_unit: &str) -> String {
    if small == 0 {
        format!("{big}{unit}")
    } else {
        format!("{big}{unit}{small}{small_unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60;
    const HOUR: u64 = 60 * MIN;
    const DAY: u64 = 24 * HOUR;
    const YEAR: u64 = 365 * DAY;

    fn h(secs: u64) -> String {
        human_duration(Duration::from_secs(secs))
    }

    #[test]
    fn boundaries() {
        let cases = [
            (0, "0s"),
            (1, "1s"),
            (119, "119s"),
            (120, "2m"),
            (121, "2m1s"),
            (9 * MIN + 59, "9m59s"),
            (10 * MIN, "10m"),
            (10 * MIN + 59, "10m"),
            (3 * HOUR - 1, "179m"),
            (3 * HOUR, "3h"),
            (3 * HOUR + 30 * MIN, "3h30m"),
            (8 * HOUR - 1, "7h59m"),
            (8 * HOUR, "8h"),
            (48 * HOUR - 1, "47h"),
            (48 * HOUR, "2d"),
            (2 * DAY + 5 * HOUR, "2d5h"),
            (8 * DAY - 1, "7d23h"),
            (8 * DAY, "8d"),
            (2 * YEAR - 1, "729d"),
            (2 * YEAR, "2y"),
            (2 * YEAR + 3 * DAY, "2y3d"),
            (8 * YEAR - 1, "7y364d"),
            (8 * YEAR, "8y"),
            (100 * YEAR, "100y"),
        ];
        for (secs, want) in cases {
            assert_eq!(h(secs), want, "{secs}s");
        }
        assert_eq!(human_duration(Duration::from_millis(1999)), "1s");
        assert_eq!(human_duration(Duration::MAX), "584942417355y");
    }

    #[test]
    fn age_cells() {
        let now = Timestamp::from_second(1_700_000_000).expect("BUG: valid test timestamp");
        let at = |delta: i64| Timestamp::from_second(1_700_000_000 - delta).ok();
        assert_eq!(age(None, now), "<unknown>");
        assert_eq!(
            age(Timestamp::from_second(GO_ZERO_TIME_SECONDS).ok(), now),
            "<unknown>"
        );
        assert_eq!(age(at(300), now), "5m");
        assert_eq!(age(at(0), now), "0s");
        assert_eq!(age(at(-1), now), "0s");
        assert_eq!(age(at(-2), now), "<invalid>");
        let skew = Timestamp::from_nanosecond(now.as_nanosecond() + 1_999_999_999).ok();
        assert_eq!(age(skew, now), "0s");
        assert_eq!(age(at(5 * 86_400), now), "5d");
    }
}

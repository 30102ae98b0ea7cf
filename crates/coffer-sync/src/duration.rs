//! Go's `time.Duration` text form (`metav1.Duration`), as ESO's `refreshInterval` uses it:
//! `1h`, `15m`, `1h30m`, `90s`, `1.5h`, `500ms`, `0`. Formatting matches Go's `String()`
//! (`1h0m0s`), so a round trip gives what ESO's API server would show.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as Go writes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration(pub Duration);

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {text:?}: {why}; write it as Go does, e.g. \"1h\", \"15m\", \"1h30m\" or \"0\""
)]
pub struct DurationError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl GoDuration {
    /// Parses Go's `time.ParseDuration` syntax (negative durations are refused).
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let err = |why| DurationError {
            text: text.to_owned(),
            why,
        };
        let s = text.strip_prefix('+').unwrap_or(text);
        if s.starts_with('-') {
            return Err(err("negative durations are not allowed"));
        }
        if s == "0" {
            return Ok(Self(Duration::ZERO));
        }
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        let mut total: f64 = 0.0;
        let mut rest = s;
        while !rest.is_empty() {
            let num_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| err("a number has no unit"))?;
            if num_end == 0 {
                return Err(err("a unit has no number"));
            }
            let number: f64 = rest[..num_end]
                .parse()
                .map_err(|_| err("a number is malformed"))?;
            rest = &rest[num_end..];
            let unit_end = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let nanos_per = match &rest[..unit_end] {
                "ns" => 1.0,
                "us" | "µs" | "μs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                _ => return Err(err("unknown unit (use ns, us, ms, s, m or h)")),
            };
            total += number * nanos_per;
            rest = &rest[unit_end..];
        }
        if !total.is_finite() || total > 1e19 {
            return Err(err("it is too large"));
        }
        Ok(Self(Duration::from_nanos(total as u64)))
    }

    /// The duration.
    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl fmt::Display for GoDuration {
    /// Go's `Duration.String()` for whole seconds and above (`1h0m0s`, `15m0s`, `30s`),
    /// and `Xms` / `Xs` with fractions below that.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        if d < Duration::from_secs(1) {
            let ms = d.as_secs_f64() * 1e3;
            return write!(f, "{}ms", trim_float(ms));
        }
        let secs = d.as_secs();
        let frac = d.subsec_nanos();
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        let sec_text = if frac == 0 {
            s.to_string()
        } else {
            trim_float(s as f64 + f64::from(frac) / 1e9)
        };
        if h > 0 {
            write!(f, "{h}h{m}m{sec_text}s")
        } else if m > 0 {
            write!(f, "{m}m{sec_text}s")
        } else {
            write!(f, "{sec_text}s")
        }
    }
}

fn trim_float(v: f64) -> String {
    let text = format!("{v:.9}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_forms() {
        let cases = [
            ("1h", 3600),
            ("15m", 900),
            ("1h30m", 5400),
            ("90s", 90),
            ("1h0m0s", 3600),
            ("0", 0),
            ("1.5h", 5400),
        ];
        for (text, secs) in cases {
            assert_eq!(
                GoDuration::parse(text).expect("valid").0,
                Duration::from_secs(secs),
                "{text}"
            );
        }
        assert_eq!(
            GoDuration::parse("500ms").expect("valid").0,
            Duration::from_millis(500)
        );
    }

    #[test]
    fn refuses_bad_text() {
        for text in ["", "h", "10", "-1h", "1x", "1h-", ".h"] {
            assert!(GoDuration::parse(text).is_err(), "{text:?} accepted");
        }
    }

    #[test]
    fn formats_like_go() {
        let show = |secs| GoDuration(Duration::from_secs(secs)).to_string();
        assert_eq!(show(3600), "1h0m0s");
        assert_eq!(show(900), "15m0s");
        assert_eq!(show(30), "30s");
        assert_eq!(show(0), "0s");
        assert_eq!(GoDuration(Duration::from_millis(250)).to_string(), "250ms");
    }
}

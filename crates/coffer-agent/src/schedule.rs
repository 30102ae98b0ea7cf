//! When live updates are applied and when the process is told: a small state machine with no
//! I/O, so its timing rules are unit-tested without a clock.
//!
//! - A burst of Secret changes is applied [`DEBOUNCE`] after its last change, but no later
//!   than [`MAX_DELAY`] after its first (so files follow within a second even under a
//!   steady stream of changes).
//! - After an apply that changed something, a reaction (signal or restart) is due at once,
//!   unless the last one was less than [`MIN_REACTION_INTERVAL`] ago: then it is due when
//!   that interval ends, and everything that changed meanwhile is folded into it.

use std::time::Duration;

use tokio::time::Instant;

/// A burst of changes is applied this long after its last change...
pub const DEBOUNCE: Duration = Duration::from_millis(100);
/// ...but no later than this after its first.
pub const MAX_DELAY: Duration = Duration::from_millis(500);
/// The process is signalled or restarted at most once per this interval.
pub const MIN_REACTION_INTERVAL: Duration = Duration::from_secs(1);

/// The pending apply and reaction.
#[derive(Clone, Copy, Debug, Default)]
pub struct Schedule {
    /// First change of the pending burst, and when to apply it.
    burst: Option<(Instant, Instant)>,
    reaction_due: Option<Instant>,
    last_reaction: Option<Instant>,
}

impl Schedule {
    /// A watched Secret changed at `now`.
    pub fn changed(&mut self, now: Instant) {
        let first = self.burst.map_or(now, |(first, _)| first);
        self.burst = Some((first, (now + DEBOUNCE).min(first + MAX_DELAY)));
    }

    /// When the pending burst is to be applied.
    pub fn apply_at(&self) -> Option<Instant> {
        self.burst.map(|(_, at)| at)
    }

    /// The burst was applied at `now`; `react` says whether the process should be told.
    pub fn applied(&mut self, now: Instant, react: bool) {
        self.burst = None;
        if react && self.reaction_due.is_none() {
            let earliest = self
                .last_reaction
                .map_or(now, |t| t + MIN_REACTION_INTERVAL);
            self.reaction_due = Some(earliest.max(now));
        }
    }

    /// When the process is to be signalled or restarted.
    pub fn reaction_at(&self) -> Option<Instant> {
        self.reaction_due
    }

    /// The process was told at `now`.
    pub fn reacted(&mut self, now: Instant) {
        self.reaction_due = None;
        self.last_reaction = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_burst_is_applied_once_after_it_settles() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        assert_eq!(s.apply_at(), None);
        s.changed(t0);
        s.changed(t0 + ms(30));
        s.changed(t0 + ms(60));
        assert_eq!(s.apply_at(), Some(t0 + ms(160)));
        s.applied(t0 + ms(160), false);
        assert_eq!(s.apply_at(), None);
        assert_eq!(s.reaction_at(), None, "nothing changed: no reaction");
    }

    #[test]
    fn a_steady_stream_is_still_applied_within_max_delay() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        for i in 0..20 {
            s.changed(t0 + ms(50 * i));
        }
        assert_eq!(s.apply_at(), Some(t0 + MAX_DELAY));
    }

    #[test]
    fn reactions_are_rate_limited_and_folded() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        s.changed(t0);
        s.applied(t0 + ms(100), true);
        assert_eq!(
            s.reaction_at(),
            Some(t0 + ms(100)),
            "the first one is immediate"
        );
        s.reacted(t0 + ms(100));
        // Two more bursts within the next second: one reaction, when the second is over.
        s.changed(t0 + ms(300));
        s.applied(t0 + ms(400), true);
        s.changed(t0 + ms(600));
        s.applied(t0 + ms(700), true);
        assert_eq!(s.reaction_at(), Some(t0 + ms(1100)));
        s.reacted(t0 + ms(1100));
        assert_eq!(s.reaction_at(), None);
        // Much later: immediate again.
        s.applied(t0 + ms(5000), true);
        assert_eq!(s.reaction_at(), Some(t0 + ms(5000)));
    }
}

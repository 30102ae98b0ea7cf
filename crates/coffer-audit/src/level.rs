//! The two small enums every other module shares: [`Level`] and [`Stage`], plus [`StageSet`].
//!
//! Names and order follow `audit.k8s.io/v1` (`staging/src/k8s.io/apiserver/pkg/apis/audit/v1/types.go`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How much of a request is recorded. Ordered: `None < Metadata < Request < RequestResponse`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Level {
    /// Nothing is recorded.
    None,
    /// User, timestamps, resource, verb, ... but no bodies.
    Metadata,
    /// Metadata and the request body (never for Secret-like resources; see [`crate::capped`]).
    Request,
    /// Metadata, request and response bodies (never for Secret-like resources).
    RequestResponse,
}

impl Level {
    /// Every level, in order, as the policy file spells them.
    pub const ALL: [Level; 4] = [
        Level::None,
        Level::Metadata,
        Level::Request,
        Level::RequestResponse,
    ];

    /// The name used in policy files and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }

    /// Parses a level name exactly as spelled in a policy (case sensitive, as kube).
    pub fn parse(name: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == name)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The point in a request's life an event is written at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Stage {
    /// As soon as the handler chain receives the request, before it is delegated.
    RequestReceived,
    /// Once response headers are sent but before the body (long-running requests such as watch).
    ResponseStarted,
    /// When the response body is complete.
    ResponseComplete,
    /// When a panic occurred.
    Panic,
}

impl Stage {
    /// Every stage, as the policy file spells them.
    pub const ALL: [Stage; 4] = [
        Stage::RequestReceived,
        Stage::ResponseStarted,
        Stage::ResponseComplete,
        Stage::Panic,
    ];

    /// The name used in policy files and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::RequestReceived => "RequestReceived",
            Stage::ResponseStarted => "ResponseStarted",
            Stage::ResponseComplete => "ResponseComplete",
            Stage::Panic => "Panic",
        }
    }

    /// Parses a stage name exactly as spelled in a policy.
    pub fn parse(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.as_str() == name)
    }

    fn bit(self) -> u8 {
        match self {
            Stage::RequestReceived => 1,
            Stage::ResponseStarted => 2,
            Stage::ResponseComplete => 4,
            Stage::Panic => 8,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of stages (the policy's `omitStages`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StageSet(u8);

impl StageSet {
    /// The empty set.
    pub const EMPTY: StageSet = StageSet(0);

    /// Adds a stage.
    pub fn insert(&mut self, stage: Stage) {
        self.0 |= stage.bit();
    }

    /// True when `stage` is in the set.
    pub fn contains(self, stage: Stage) -> bool {
        self.0 & stage.bit() != 0
    }

    /// The union of two sets (a rule's `omitStages` adds to the policy's).
    pub fn union(self, other: StageSet) -> StageSet {
        StageSet(self.0 | other.0)
    }

    /// True when no stage is in the set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The stages in the set, in [`Stage::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Stage> {
        Stage::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl FromIterator<Stage> for StageSet {
    fn from_iter<I: IntoIterator<Item = Stage>>(iter: I) -> Self {
        let mut set = StageSet::EMPTY;
        for stage in iter {
            set.insert(stage);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_and_round_trip() {
        assert!(Level::None < Level::Metadata);
        assert!(Level::Metadata < Level::Request);
        assert!(Level::Request < Level::RequestResponse);
        for level in Level::ALL {
            assert_eq!(Level::parse(level.as_str()), Some(level));
        }
        assert_eq!(Level::parse("metadata"), None);
    }

    #[test]
    fn stage_set_union_and_iter() {
        let a: StageSet = [Stage::RequestReceived].into_iter().collect();
        let b: StageSet = [Stage::Panic].into_iter().collect();
        let u = a.union(b);
        assert!(u.contains(Stage::RequestReceived) && u.contains(Stage::Panic));
        assert!(!u.contains(Stage::ResponseComplete));
        assert_eq!(
            u.iter().collect::<Vec<_>>(),
            vec![Stage::RequestReceived, Stage::Panic]
        );
        assert!(StageSet::EMPTY.is_empty());
    }
}

//! `RotationStatus` (the future `SecretRotation.status`) and the in-flight step record the
//! state machine writes before each step. Neither ever holds a secret value: the pending value
//! lives in the Secret's `pending` stage, so a status can be shown to anyone who may read the
//! rotation.

use std::fmt;

use coffer_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The four steps of AWS Secrets Manager's rotation, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepName {
    /// Generate the pending value and store it as the Secret's `pending` stage.
    CreateSecret,
    /// Apply the pending value in the target system.
    SetSecret,
    /// Log in with the pending value.
    TestSecret,
    /// pending → current, current → previous; the target's previous credential gets its
    /// grace-period expiry.
    FinishSecret,
}

impl StepName {
    /// All steps in order.
    pub const ALL: [StepName; 4] = [
        StepName::CreateSecret,
        StepName::SetSecret,
        StepName::TestSecret,
        StepName::FinishSecret,
    ];

    /// The API spelling (`createSecret` ...).
    pub fn as_str(self) -> &'static str {
        match self {
            StepName::CreateSecret => "createSecret",
            StepName::SetSecret => "setSecret",
            StepName::TestSecret => "testSecret",
            StepName::FinishSecret => "finishSecret",
        }
    }
}

impl fmt::Display for StepName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The step in flight, written (compare-and-swap) before the step is taken.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InFlightStep {
    /// The step about to be (or being) taken.
    pub name: StepName,
    /// The version being rotated in (the `pending` stage's version).
    pub version: u64,
    /// When this rotation started.
    pub started_time: Timestamp,
    /// Set once a rollback has begun: resuming finishes the rollback, never the rotation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rolling_back: bool,
    /// Why the rollback began (an error text without values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Until when the value rotated out stays valid; fixed when finishSecret is recorded so
    /// a resumed finish gives the target the same time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_valid_until: Option<Timestamp>,
}

/// Where a rotation stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Never rotated.
    #[default]
    Pending,
    /// A rotation is in flight (see `step`).
    Rotating,
    /// The last rotation finished.
    Succeeded,
    /// The last rotation failed; the current value is unchanged (rolled back) or a step
    /// waits to be retried (`step` is set).
    Failed,
}

/// The status of one rotation.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationStatus {
    /// Where it stands.
    pub phase: Phase,
    /// The version of the Secret's current value (0 before the first rotation).
    pub current_version: u64,
    /// When the last rotation finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_time: Option<Timestamp>,
    /// When the next one is due (see [`crate::next_rotation`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_time: Option<Timestamp>,
    /// Until when the previous value stays valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_valid_until: Option<Timestamp>,
    /// The step in flight, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<InFlightStep>,
    /// Failures since the last success.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consecutive_failures: u32,
    /// The value of the `coffer.dev/rotate-now` annotation last acted on: a different value
    /// asks the controller for a rotation now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_now_handled: Option<String>,
    /// Kubernetes-style conditions: `Ready` (the current value is good) and `Rotating`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl RotationStatus {
    /// Sets condition `type_` (keeping `lastTransitionTime` when the status does not change,
    /// as Kubernetes' `meta.SetStatusCondition` does).
    pub fn set_condition(
        &mut self,
        type_: &str,
        status: bool,
        reason: &str,
        message: &str,
        now: Timestamp,
    ) {
        let status = if status { "True" } else { "False" };
        if let Some(c) = self.conditions.iter_mut().find(|c| c.type_ == type_) {
            if c.status != status {
                c.last_transition_time = Time(now);
            }
            c.status = status.into();
            c.reason = reason.into();
            c.message = message.into();
            return;
        }
        self.conditions.push(Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: Time(now),
            observed_generation: None,
        });
    }

    /// The condition of `type_`.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_serializes_in_api_shape() {
        let now: Timestamp = "2026-01-02T03:04:05Z".parse().expect("ts");
        let mut s = RotationStatus {
            phase: Phase::Rotating,
            current_version: 3,
            step: Some(InFlightStep {
                name: StepName::TestSecret,
                version: 4,
                started_time: now,
                rolling_back: false,
                reason: None,
                previous_valid_until: None,
            }),
            ..RotationStatus::default()
        };
        s.set_condition("Ready", true, "Rotated", "version 3 is current", now);
        let later = now + jiff::SignedDuration::from_secs(60);
        s.set_condition("Ready", true, "Rotated", "again", later);
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["phase"], "Rotating");
        assert_eq!(json["step"]["name"], "testSecret");
        assert_eq!(json["step"]["version"], 4);
        assert_eq!(
            json["conditions"][0]["lastTransitionTime"],
            "2026-01-02T03:04:05Z"
        );
        assert_eq!(json["conditions"][0]["message"], "again");
        let back: RotationStatus = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, s);
    }
}

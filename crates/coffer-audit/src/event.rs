//! The `audit.k8s.io/v1` `Event`, field for field as kube-apiserver writes it
//! (`staging/src/k8s.io/apiserver/pkg/apis/audit/v1/types.go`), with Go's `omitempty` rules:
//! empty strings, lists, maps and absent objects are left out; `level`, `auditID`, `stage`,
//! `requestURI`, `verb`, `user` and both timestamps are always written.
//!
//! **Bodies.** `requestObject` and `responseObject` belong only to events at `Request` and
//! `RequestResponse` level. Build events with [`Event::metadata`] (no bodies) and add bodies
//! only through [`Event::attach_bodies`], which honours the level and Coffer's cap
//! ([`crate::capped`]). At `Metadata` level a caller must not set the body fields itself;
//! the writer strips them anyway ([`Event::enforce_limits`]), so a Secret value that reached an
//! event by mistake still never reaches the file.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::checker::{Attributes, RequestAuditConfig, capped};
use crate::level::{Level, Stage};

/// `kind` of every event.
pub const KIND: &str = "Event";
/// `apiVersion` of every event.
pub const EVENT_API_VERSION: &str = "audit.k8s.io/v1";

/// One audit event (one line of the log).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Always `Event`.
    pub kind: String,
    /// Always `audit.k8s.io/v1`.
    pub api_version: String,
    /// The level the event was recorded at.
    pub level: Level,
    /// Unique per request; all stages of one request share it.
    #[serde(rename = "auditID")]
    pub audit_id: String,
    /// The stage this event was written at.
    pub stage: Stage,
    /// The request URI (path and query) as sent.
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    /// The Kubernetes verb (`get`, `list`, `create`, ...), or the lower-cased HTTP method.
    pub verb: String,
    /// The authenticated user.
    pub user: EventUser,
    /// The user impersonated, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<EventUser>,
    /// Client and proxy addresses.
    #[serde(default, rename = "sourceIPs", skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    /// The client's User-Agent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    /// The object of a resource request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectReference>,
    /// The response status (absent at `RequestReceived`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    /// The request body (only at `Request` and `RequestResponse`, never for capped resources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_object: Option<serde_json::Value>,
    /// The response body (only at `RequestResponse`, never for capped resources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_object: Option<serde_json::Value>,
    /// When the request arrived.
    pub request_received_timestamp: MicroTime,
    /// When this stage was reached.
    pub stage_timestamp: MicroTime,
    /// Annotations: `authorization.k8s.io/decision`, `authorization.k8s.io/reason`, and the
    /// writer's `coffer.dev/seq` and `coffer.dev/chain`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The user of an event (`authentication.k8s.io/v1` `UserInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventUser {
    /// User name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// User uid.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Extra attributes (`authentication.kubernetes.io/credential-id`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The object a resource request is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// Resource (`secrets`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Object uid.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// API group (`""` = core, omitted).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    /// API version (`v1`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// Resource version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// Subresource (`token`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

/// The response status (a `metav1.Status`; `metadata` is always `{}` as Go writes it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseStatus {
    /// Always an empty object.
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// `Success` or `Failure` (usually empty for successes, as kube-apiserver writes them).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// Human-readable message (never a secret value: Coffer's error texts never quote data).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Machine-readable reason (`NotFound`, `Forbidden`, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// HTTP status code.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub code: i32,
}

fn is_zero(code: &i32) -> bool {
    *code == 0
}

impl ResponseStatus {
    /// A status holding only the HTTP code, as kube-apiserver records successes.
    pub fn code(code: i32) -> ResponseStatus {
        ResponseStatus {
            code,
            ..ResponseStatus::default()
        }
    }
}

impl Event {
    /// A `Metadata`-shaped event for a request: user, verb, URI, object reference and
    /// timestamps, no bodies. `level` is the level the policy chose
    /// ([`RequestAuditConfig::level`]); bodies may be added afterwards only with
    /// [`Event::attach_bodies`]. `stage_timestamp` starts equal to `received`.
    pub fn metadata(
        audit_id: impl Into<String>,
        level: Level,
        stage: Stage,
        attrs: &Attributes,
        user: EventUser,
        request_uri: impl Into<String>,
        received: MicroTime,
    ) -> Event {
        let object_ref = attrs.is_resource.then(|| ObjectReference {
            resource: attrs.resource.clone(),
            namespace: attrs.namespace.clone(),
            name: attrs.name.clone(),
            api_group: attrs.api_group.clone(),
            api_version: attrs.api_version.clone(),
            subresource: attrs.subresource.clone(),
            ..ObjectReference::default()
        });
        let mut event = Event {
            kind: KIND.to_owned(),
            api_version: EVENT_API_VERSION.to_owned(),
            level,
            audit_id: audit_id.into(),
            stage,
            request_uri: request_uri.into(),
            verb: attrs.verb.clone(),
            user,
            impersonated_user: None,
            source_ips: Vec::new(),
            user_agent: String::new(),
            object_ref,
            response_status: None,
            request_object: None,
            response_object: None,
            request_received_timestamp: received,
            stage_timestamp: received,
            annotations: BTreeMap::new(),
        };
        event.enforce_limits();
        event
    }

    /// Adds bodies as far as the event's level and Coffer's cap allow: the request body at
    /// `Request` and above, the response body at `RequestResponse`, neither for capped
    /// resources ([`crate::capped`]). `managedFields` is removed when the policy says so.
    pub fn attach_bodies(
        &mut self,
        config: &RequestAuditConfig,
        request: Option<serde_json::Value>,
        response: Option<serde_json::Value>,
    ) {
        self.enforce_limits();
        let strip = |mut v: serde_json::Value| {
            if config.omit_managed_fields
                && let Some(meta) = v.get_mut("metadata").and_then(|m| m.as_object_mut())
            {
                meta.remove("managedFields");
            }
            v
        };
        if self.level >= Level::Request {
            self.request_object = request.map(strip);
        }
        if self.level >= Level::RequestResponse {
            self.response_object = response.map(strip);
        }
    }

    /// Applies Coffer's limits in place: an event about a capped resource is lowered to
    /// `Metadata`, and bodies the level does not allow are dropped. The writer calls this
    /// on every event before it is serialized.
    pub fn enforce_limits(&mut self) {
        if let Some(r) = &self.object_ref
            && capped(&r.resource, &r.subresource)
        {
            self.level = self.level.min(Level::Metadata);
        }
        if self.level < Level::Request {
            self.request_object = None;
        }
        if self.level < Level::RequestResponse {
            self.response_object = None;
        }
    }
}

/// A timestamp with microsecond precision, written as kube's `metav1.MicroTime`:
/// RFC 3339 in UTC with exactly six fractional digits (`2026-11-29T10:00:00.123456Z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MicroTime {
    /// Microseconds since the Unix epoch.
    micros: i64,
}

impl MicroTime {
    /// The current time.
    pub fn now() -> MicroTime {
        MicroTime::from(SystemTime::now())
    }

    /// A time from microseconds since the Unix epoch.
    pub fn from_unix_micros(micros: i64) -> MicroTime {
        MicroTime { micros }
    }

    /// Microseconds since the Unix epoch.
    pub fn unix_micros(self) -> i64 {
        self.micros
    }
}

impl From<SystemTime> for MicroTime {
    fn from(t: SystemTime) -> MicroTime {
        let micros = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
        };
        MicroTime { micros }
    }
}

impl fmt::Display for MicroTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = i128::from(self.micros) * 1000;
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.microsecond()
        )
    }
}

impl Serialize for MicroTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MicroTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MicroTime, D::Error> {
        let text = String::deserialize(d)?;
        let t = time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
            .map_err(|e| serde::de::Error::custom(format!("bad timestamp {text:?}: {e}")))?;
        let micros = i64::try_from(t.unix_timestamp_nanos() / 1000)
            .map_err(|_| serde::de::Error::custom("timestamp out of range"))?;
        Ok(MicroTime { micros })
    }
}

#[cfg(test)]
#[path = "event_tests.rs"]
mod tests;

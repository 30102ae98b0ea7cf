//! The downward API: what a container may learn about its Pod through `fieldRef` and about
//! its resources through `resourceFieldRef` (kubelet `pkg/fieldpath/fieldpath.go`,
//! `pkg/api/v1/resource/helpers.go` `ExtractContainerResourceValue`).
//!
//! There is no Pod object here, so each field comes from the manifest where it is written and
//! otherwise from the machine ([`PodInfo::new`]):
//!
//! | field | from the manifest | otherwise |
//! |---|---|---|
//! | `metadata.name` | the Pod's name; for a workload, its template's name, else the workload's | — |
//! | `metadata.namespace` | the namespace the run uses | — |
//! | `metadata.uid` | `metadata.uid` of a Pod | a random UUID per `coffer run` |
//! | `metadata.labels`, `metadata.annotations` | the Pod's (the template's for a workload) | empty |
//! | `spec.serviceAccountName` | `spec.serviceAccountName` | `default` |
//! | `spec.nodeName` | `spec.nodeName` | the host name |
//! | `status.podIP(s)`, `status.hostIP(s)` | `status.podIP`, `status.hostIP` of a Pod | the host's outbound IPv4 address (the process shares the host's network, as a `hostNetwork` pod), else 127.0.0.1 |
//!
//! Resource limits that are not set are the node's allocatable amounts, as the kubelet
//! substitutes them: the CPUs this process may use, `MemTotal`, and the size of the file
//! system of `/`. Unset requests are the limits when those are written (API defaulting),
//! else 0.
//!
//! No I/O except in [`LocalFacts::detect`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ObjectFieldSelector, ResourceFieldSelector, ResourceRequirements,
};

use crate::manifest::PodTemplate;

/// Why a `fieldRef` or `resourceFieldRef` has no value.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum DownwardError {
    /// The field path is not one the downward API offers here.
    #[error(
        "unsupported fieldRef fieldPath {0:?} (supported: metadata.name, metadata.namespace, metadata.uid, metadata.labels['KEY'], metadata.annotations['KEY'], spec.nodeName, spec.serviceAccountName, status.podIP(s), status.hostIP(s); and metadata.labels, metadata.annotations in volumes)"
    )]
    UnsupportedField(String),
    /// The resource is not one the downward API offers.
    #[error(
        "unsupported resourceFieldRef resource {0:?} (supported: limits.cpu, limits.memory, limits.ephemeral-storage, requests.cpu, requests.memory, requests.ephemeral-storage, limits.hugepages-*, requests.hugepages-*)"
    )]
    UnsupportedResource(String),
    /// `containerName` names no container of the pod.
    #[error("resourceFieldRef names container {0:?}, which the pod does not have")]
    NoSuchContainer(String),
    /// A quantity (a limit, a request or the divisor) could not be read.
    #[error("invalid quantity {0:?} in resourceFieldRef (a divisor must be above 0)")]
    Quantity(String),
}

/// Facts about the machine that stand in for what a cluster would have assigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalFacts {
    /// The host name (for `spec.nodeName`).
    pub node_name: String,
    /// The host's address (for `status.podIP` and `status.hostIP`).
    pub host_ip: String,
    /// A UUID for `metadata.uid`.
    pub uid: String,
    /// CPUs this process may use, in millicores.
    pub cpu_millis: i128,
    /// Memory of the machine, in bytes.
    pub memory_bytes: i128,
    /// Size of the file system of `/`, in bytes.
    pub ephemeral_storage_bytes: i128,
}

impl LocalFacts {
    /// Reads the host name, the outbound IPv4 address (a UDP `connect`, which sends
    /// nothing), a fresh UUID, the CPUs, `MemTotal` and the size of `/`.
    pub fn detect() -> Self {
        let node_name = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".to_owned());
        let host_ip = std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
            .and_then(|s| s.local_addr())
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|_| "127.0.0.1".to_owned());
        let uid = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
            .map(|u| u.trim().to_owned())
            .unwrap_or_else(|_| format!("00000000-0000-4000-8000-{:012x}", std::process::id()));
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i128>().ok())
            })
            .map_or(0, |kib| kib * 1024);
        let ephemeral_storage_bytes = nix::sys::statvfs::statvfs("/").map_or(0, |s| {
            i128::from(s.blocks()) * i128::from(s.fragment_size())
        });
        Self {
            node_name,
            host_ip,
            uid,
            cpu_millis: i128::try_from(cpus).unwrap_or(1) * 1000,
            memory_bytes,
            ephemeral_storage_bytes,
        }
    }
}

#[cfg(test)]
impl LocalFacts {
    /// Fixed facts for tests.
    pub(crate) fn for_tests() -> Self {
        Self {
            node_name: "node-1".into(),
            host_ip: "10.0.0.5".into(),
            uid: "11111111-2222-4333-8444-555555555555".into(),
            cpu_millis: 2000,
            memory_bytes: 8 << 30,
            ephemeral_storage_bytes: 100 << 30,
        }
    }
}

/// What the downward API reports about the pod (see the module docs for where each value
/// comes from).
#[derive(Clone, Debug)]
pub struct PodInfo {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `spec.serviceAccountName`.
    pub service_account: String,
    /// `spec.nodeName`.
    pub node_name: String,
    /// `status.podIP`.
    pub pod_ip: String,
    /// `status.hostIP`.
    pub host_ip: String,
    /// The pod's containers (for `resourceFieldRef.containerName`).
    pub containers: Vec<Container>,
    /// The machine's facts (allocatable amounts for unset limits).
    pub local: LocalFacts,
}

impl PodInfo {
    /// The downward API view of `pod` running in `namespace` on a machine with `local`.
    pub fn new(pod: &PodTemplate, namespace: &str, local: LocalFacts) -> Self {
        let meta = &pod.metadata;
        let status = pod.status.as_ref();
        let status_ip = |f: fn(&k8s_openapi::api::core::v1::PodStatus) -> Option<&String>| {
            status.and_then(f).filter(|s| !s.is_empty()).cloned()
        };
        Self {
            name: meta
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| pod.name.clone()),
            namespace: namespace.to_owned(),
            uid: meta.uid.clone().unwrap_or_else(|| local.uid.clone()),
            labels: meta.labels.clone().unwrap_or_default(),
            annotations: meta.annotations.clone().unwrap_or_default(),
            service_account: service_account_name(&pod.spec),
            node_name: pod
                .spec
                .node_name
                .clone()
                .unwrap_or_else(|| local.node_name.clone()),
            pod_ip: status_ip(|s| s.pod_ip.as_ref()).unwrap_or_else(|| local.host_ip.clone()),
            host_ip: status_ip(|s| s.host_ip.as_ref()).unwrap_or_else(|| local.host_ip.clone()),
            containers: pod.spec.containers.clone(),
            local,
        }
    }

    /// The value of `fieldRef`. `whole_maps` allows `metadata.labels` and
    /// `metadata.annotations` without a key (volumes only), in the kubelet's format.
    pub fn field(
        &self,
        selector: &ObjectFieldSelector,
        whole_maps: bool,
    ) -> Result<String, DownwardError> {
        let path = selector.field_path.as_str();
        let map_key = |prefix: &str| {
            path.strip_prefix(prefix)
                .and_then(|r| r.strip_prefix("['"))
                .and_then(|r| r.strip_suffix("']"))
        };
        Ok(match path {
            "metadata.name" => self.name.clone(),
            "metadata.namespace" => self.namespace.clone(),
            "metadata.uid" => self.uid.clone(),
            "spec.nodeName" => self.node_name.clone(),
            "spec.serviceAccountName" => self.service_account.clone(),
            "status.podIP" | "status.podIPs" => self.pod_ip.clone(),
            "status.hostIP" | "status.hostIPs" => self.host_ip.clone(),
            "metadata.labels" if whole_maps => format_map(&self.labels),
            "metadata.annotations" if whole_maps => format_map(&self.annotations),
            _ => {
                if let Some(key) = map_key("metadata.labels") {
                    self.labels.get(key).cloned().unwrap_or_default()
                } else if let Some(key) = map_key("metadata.annotations") {
                    self.annotations.get(key).cloned().unwrap_or_default()
                } else {
                    return Err(DownwardError::UnsupportedField(path.to_owned()));
                }
            }
        })
    }

    /// The value of `resourceFieldRef` for `selector.containerName`, or for `default` when
    /// it names none.
    pub fn resource(
        &self,
        selector: &ResourceFieldSelector,
        default: &str,
    ) -> Result<String, DownwardError> {
        let name = selector
            .container_name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(default);
        let container = self
            .containers
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| DownwardError::NoSuchContainer(name.to_owned()))?;
        let resource = selector.resource.as_str();
        let (kind, what) = resource
            .split_once('.')
            .filter(|(k, _)| matches!(*k, "limits" | "requests"))
            .ok_or_else(|| DownwardError::UnsupportedResource(resource.to_owned()))?;
        let allocatable = match what {
            "cpu" => Some(self.local.cpu_millis * 1_000_000),
            "memory" => Some(self.local.memory_bytes * NANO),
            "ephemeral-storage" => Some(self.local.ephemeral_storage_bytes * NANO),
            w if w.starts_with("hugepages-") => None,
            _ => return Err(DownwardError::UnsupportedResource(resource.to_owned())),
        };
        let empty = ResourceRequirements::default();
        let res = container.resources.as_ref().unwrap_or(&empty);
        let written = |m: Option<
            &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
        >| { m.and_then(|m| m.get(what)).map(|q| q.0.clone()) };
        let limit = written(res.limits.as_ref());
        let nanos = match (kind, limit) {
            ("limits", Some(q)) => parse_quantity(&q)?,
            ("limits", None) => allocatable.unwrap_or(0),
            (_, limit) => match written(res.requests.as_ref()).or(limit) {
                Some(q) => parse_quantity(&q)?,
                None => 0,
            },
        };
        let divisor = selector.divisor.as_ref().map_or("1", |d| d.0.as_str());
        let divisor = parse_quantity(divisor)?;
        // CPU is compared in millicores, everything else in units, both rounded up
        // (Quantity.MilliValue / Value), then divided and rounded up.
        let (value, divisor) = if what == "cpu" {
            (ceil_div(nanos, 1_000_000), ceil_div(divisor, 1_000_000))
        } else {
            (ceil_div(nanos, NANO), ceil_div(divisor, NANO))
        };
        if divisor <= 0 {
            return Err(DownwardError::Quantity(
                selector
                    .divisor
                    .as_ref()
                    .map_or_else(String::new, |d| d.0.clone()),
            ));
        }
        Ok(ceil_div(value, divisor).to_string())
    }
}

/// `spec.serviceAccountName`, else the deprecated `spec.serviceAccount`, else `default`.
pub fn service_account_name(spec: &k8s_openapi::api::core::v1::PodSpec) -> String {
    spec.service_account_name
        .clone()
        .or_else(|| spec.service_account.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

const NANO: i128 = 1_000_000_000;

fn ceil_div(a: i128, b: i128) -> i128 {
    if b == 0 {
        return 0;
    }
    let q = a / b;
    if (a % b != 0) && ((a < 0) == (b < 0)) {
        q + 1
    } else {
        q
    }
}

/// Parses a Kubernetes quantity (`500m`, `1.5`, `128Mi`, `1G`, `2e3`) into nano-units.
pub fn parse_quantity(text: &str) -> Result<i128, DownwardError> {
    let bad = || DownwardError::Quantity(text.to_owned());
    let s = text.trim();
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && frac.is_empty()) || frac.len() > 9 || whole.len() > 20 {
        return Err(bad());
    }
    let whole: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac_nanos: i128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    let base = whole * NANO + frac_nanos;
    // (numerator, denominator) applied to the nano-unit value.
    let (num, den): (i128, i128) = match suffix {
        "" => (1, 1),
        "n" => (1, NANO),
        "u" => (1, 1_000_000),
        "m" => (1, 1000),
        "k" => (1000, 1),
        "M" => (1_000_000, 1),
        "G" => (NANO, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "E" => (1_000_000_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        exp if exp.starts_with(['e', 'E']) => {
            let e: i32 = exp[1..].parse().map_err(|_| bad())?;
            if !(-9..=18).contains(&e) {
                return Err(bad());
            }
            if e >= 0 {
                (10i128.pow(e.unsigned_abs()), 1)
            } else {
                (1, 10i128.pow(e.unsigned_abs()))
            }
        }
        _ => return Err(bad()),
    };
    let value = ceil_div(base.checked_mul(num).ok_or_else(bad)?, den);
    Ok(if negative { -value } else { value })
}

/// The kubelet's `fieldpath.FormatMap`: `key="value"` lines sorted by key, values quoted as
/// Go's `%q` does, no newline after the last.
pub fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={}", coffer_api::go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LocalFacts {
        LocalFacts::for_tests()
    }

    fn pod(yaml: &str) -> PodInfo {
        let t = crate::manifest::parse_manifest(yaml).expect("manifest");
        PodInfo::new(&t, "shop", local())
    }

    const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web-0
  uid: 6f1c-uid
  labels: {app: web, tier: "front end"}
  annotations: {note: "say \"hi\"\n"}
spec:
  serviceAccountName: web-sa
  containers:
  - name: app
    resources:
      limits: {cpu: 500m, memory: 128Mi}
  - name: side
    resources:
      requests: {cpu: "1.5", memory: 1G}
status: {podIP: 10.1.2.3}
"#;

    fn field(p: &PodInfo, path: &str, maps: bool) -> Result<String, DownwardError> {
        p.field(
            &ObjectFieldSelector {
                field_path: path.into(),
                api_version: None,
            },
            maps,
        )
    }

    #[test]
    fn fields_from_the_manifest_and_the_machine() {
        let p = pod(POD);
        let f = |path| field(&p, path, false).expect(path);
        assert_eq!(f("metadata.name"), "web-0");
        assert_eq!(f("metadata.namespace"), "shop");
        assert_eq!(f("metadata.uid"), "6f1c-uid");
        assert_eq!(f("metadata.labels['tier']"), "front end");
        assert_eq!(f("metadata.labels['none']"), "");
        assert_eq!(f("metadata.annotations['note']"), "say \"hi\"\n");
        assert_eq!(f("spec.serviceAccountName"), "web-sa");
        assert_eq!(f("spec.nodeName"), "node-1");
        assert_eq!(f("status.podIP"), "10.1.2.3");
        assert_eq!(f("status.hostIP"), "10.0.0.5");
        assert!(field(&p, "metadata.labels", false).is_err());
        assert_eq!(
            field(&p, "metadata.labels", true).expect("labels"),
            "app=\"web\"\ntier=\"front end\""
        );
        assert_eq!(
            field(&p, "metadata.annotations", true).expect("annotations"),
            r#"note="say \"hi\"\n""#
        );
        assert!(field(&p, "spec.containers", true).is_err());

        let d = pod(
            "kind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    \
                     metadata: {labels: {a: b}}\n    spec: {containers: [{name: c}]}\n",
        );
        assert_eq!(d.name, "web");
        assert_eq!(d.uid, local().uid);
        assert_eq!(d.service_account, "default");
        assert_eq!(d.pod_ip, "10.0.0.5");
        assert_eq!(d.labels.get("a").map(String::as_str), Some("b"));
    }

    fn resource(p: &PodInfo, c: Option<&str>, r: &str, div: Option<&str>) -> String {
        let sel = ResourceFieldSelector {
            container_name: c.map(str::to_owned),
            resource: r.into(),
            divisor: div.map(|d| k8s_openapi::apimachinery::pkg::api::resource::Quantity(d.into())),
        };
        p.resource(&sel, "app").expect(r)
    }

    #[test]
    fn resources_with_divisors_and_node_fallbacks() {
        let p = pod(POD);
        assert_eq!(resource(&p, None, "limits.cpu", None), "1");
        assert_eq!(resource(&p, None, "limits.cpu", Some("1m")), "500");
        assert_eq!(resource(&p, None, "limits.memory", None), "134217728");
        assert_eq!(resource(&p, None, "limits.memory", Some("1Mi")), "128");
        // Requests default to limits; unset limits are the node's allocatable.
        assert_eq!(resource(&p, None, "requests.cpu", Some("1m")), "500");
        assert_eq!(resource(&p, Some("side"), "limits.cpu", None), "2");
        assert_eq!(resource(&p, Some("side"), "requests.cpu", None), "2");
        assert_eq!(
            resource(&p, Some("side"), "requests.memory", Some("1M")),
            "1000"
        );
        assert_eq!(
            resource(&p, Some("side"), "limits.memory", Some("1Gi")),
            "8"
        );
        let bad = |c: Option<&str>, r: &str, d: Option<&str>| {
            p.resource(
                &ResourceFieldSelector {
                    container_name: c.map(str::to_owned),
                    resource: r.into(),
                    divisor: d
                        .map(|d| k8s_openapi::apimachinery::pkg::api::resource::Quantity(d.into())),
                },
                "app",
            )
            .is_err()
        };
        assert!(bad(Some("nope"), "limits.cpu", None));
        assert!(bad(None, "limits.gpu", None));
        assert!(bad(None, "limits.cpu", Some("0")));
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("500m").ok(), Some(500_000_000));
        assert_eq!(parse_quantity("1.5").ok(), Some(1_500_000_000));
        assert_eq!(parse_quantity("2Ki").ok(), Some(2048 * NANO));
        assert_eq!(parse_quantity("1e3").ok(), Some(1000 * NANO));
        assert_eq!(parse_quantity("1k").ok(), Some(1000 * NANO));
        assert!(parse_quantity("abc").is_err());
        assert!(parse_quantity("1X").is_err());
    }

    #[test]
    fn format_map_quotes_as_go() {
        let m: BTreeMap<String, String> = [
            ("b".to_owned(), "x\ty".to_owned()),
            ("a".to_owned(), "é".to_owned()),
        ]
        .into();
        assert_eq!(format_map(&m), "a=\"é\"\nb=\"x\\ty\"");
    }
}

//! ServiceAccount tokens as the kubelet provides them (`reference/k8s-api.md` §9.5, §13.4):
//! projected `serviceAccountToken` sources, the automatic `kube-api-access` volume, and when
//! a token is refreshed.
//!
//! - **Projected sources** (`path`, `audience`, `expirationSeconds` default 3600, at least
//!   600): a token for the Pod's `spec.serviceAccountName` (default `default`) is requested
//!   through TokenRequest, once per distinct audience and lifetime ([`TokenSpec`]). The
//!   kubelet binds it to the Pod; Coffer serves no Pods, so the token is not bound.
//! - **Automount**: unless the pod says `automountServiceAccountToken: false`, or the
//!   container already mounts something at [`SERVICE_ACCOUNT_MOUNT_PATH`], the container gets
//!   the projected volume the ServiceAccount admission plugin adds ([`add_service_account_volume`]):
//!   `token` (3607 s), `ca.crt` (ConfigMap `kube-root-ca.crt`, or else the kubeconfig's CA)
//!   and `namespace`.
//! - **Refresh** ([`refresh_delay`]): the kubelet's token manager rule — a new token once 80 %
//!   of its lifetime has passed, or once it is older than 24 h.

use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ConfigMapProjection, Container, DownwardAPIProjection, DownwardAPIVolumeFile, KeyToPath,
    ObjectFieldSelector, PodSpec, ProjectedVolumeSource, ServiceAccountTokenProjection, Volume,
    VolumeMount, VolumeProjection,
};

use crate::data::TokenSpec;

/// Where the kubelet mounts the ServiceAccount volume.
pub const SERVICE_ACCOUNT_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The name of the volume [`add_service_account_volume`] adds (kube's are
/// `kube-api-access-<random>`).
pub const SERVICE_ACCOUNT_VOLUME: &str = "kube-api-access-coffer";
/// The ConfigMap the kubelet takes `ca.crt` from.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// The lifetime of the automatic token, as the admission plugin asks for it.
pub const AUTOMOUNT_EXPIRATION_SECONDS: i64 = 3607;
/// `expirationSeconds` when a projection gives none.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The least `expirationSeconds` Kubernetes accepts.
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The kubelet refreshes a token at the latest when it is this old (`maxTTL`).
pub const MAX_TOKEN_AGE: Duration = Duration::from_secs(24 * 3600);

/// The token spec of a projected `serviceAccountToken` source, or why it is refused.
pub fn token_spec(projection: &ServiceAccountTokenProjection) -> Result<TokenSpec, String> {
    let seconds = projection
        .expiration_seconds
        .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    if seconds < MIN_EXPIRATION_SECONDS {
        return Err(format!(
            "expirationSeconds: Invalid value: {seconds}: may not specify a duration less than 10 minutes"
        ));
    }
    Ok(TokenSpec {
        audience: projection.audience.clone().filter(|a| !a.is_empty()),
        expiration_seconds: seconds,
    })
}

/// The spec of the automatic token.
pub fn automount_token_spec() -> TokenSpec {
    TokenSpec {
        audience: None,
        expiration_seconds: AUTOMOUNT_EXPIRATION_SECONDS,
    }
}

/// Adds the ServiceAccount volume and its mount, as the admission plugin does, unless
/// `automountServiceAccountToken` is false or the container mounts that path already.
/// Returns whether it did.
pub fn add_service_account_volume(spec: &mut PodSpec, container: &mut Container) -> bool {
    if spec.automount_service_account_token == Some(false) {
        return false;
    }
    let mounts = container.volume_mounts.get_or_insert_with(Vec::new);
    if mounts
        .iter()
        .any(|m| m.mount_path.trim_end_matches('/') == SERVICE_ACCOUNT_MOUNT_PATH)
    {
        return false;
    }
    mounts.push(VolumeMount {
        name: SERVICE_ACCOUNT_VOLUME.to_owned(),
        mount_path: SERVICE_ACCOUNT_MOUNT_PATH.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    });
    let sources = vec![
        VolumeProjection {
            service_account_token: Some(ServiceAccountTokenProjection {
                path: "token".to_owned(),
                expiration_seconds: Some(AUTOMOUNT_EXPIRATION_SECONDS),
                audience: None,
            }),
            ..VolumeProjection::default()
        },
        VolumeProjection {
            config_map: Some(ConfigMapProjection {
                name: ROOT_CA_CONFIG_MAP.to_owned(),
                items: Some(vec![KeyToPath {
                    key: "ca.crt".to_owned(),
                    path: "ca.crt".to_owned(),
                    mode: None,
                }]),
                // Coffer fills it from the kubeconfig when the server has none.
                optional: Some(true),
            }),
            ..VolumeProjection::default()
        },
        VolumeProjection {
            downward_api: Some(DownwardAPIProjection {
                items: Some(vec![DownwardAPIVolumeFile {
                    path: "namespace".to_owned(),
                    field_ref: Some(ObjectFieldSelector {
                        api_version: Some("v1".to_owned()),
                        field_path: "metadata.namespace".to_owned(),
                    }),
                    ..DownwardAPIVolumeFile::default()
                }]),
            }),
            ..VolumeProjection::default()
        },
    ];
    spec.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: SERVICE_ACCOUNT_VOLUME.to_owned(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(0o644),
            sources: Some(sources),
        }),
        ..Volume::default()
    });
    true
}

/// How long after issue a token of `lifetime` is replaced: when 80 % of its lifetime has
/// passed, or at `max_age` (24 h for the kubelet), whichever comes first.
pub fn refresh_delay(lifetime: Duration, max_age: Duration) -> Duration {
    (lifetime * 4 / 5).min(max_age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_at_80_percent_or_max_age() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(
            refresh_delay(Duration::from_secs(3600), MAX_TOKEN_AGE),
            Duration::from_secs(2880)
        );
        assert_eq!(refresh_delay(h(48), MAX_TOKEN_AGE), h(24));
        assert_eq!(
            refresh_delay(Duration::from_secs(600), Duration::from_secs(5)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn token_specs_default_and_minimum() {
        let p = |seconds, audience: Option<&str>| ServiceAccountTokenProjection {
            path: "t".into(),
            expiration_seconds: seconds,
            audience: audience.map(str::to_owned),
        };
        let spec = token_spec(&p(None, Some("vault"))).expect("spec");
        assert_eq!(spec.expiration_seconds, 3600);
        assert_eq!(spec.audience.as_deref(), Some("vault"));
        assert_eq!(
            token_spec(&p(Some(599), None)).expect_err("short"),
            "expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes"
        );
    }

    #[test]
    fn automount_unless_disabled_or_already_mounted() {
        let pod = |yaml: &str| crate::manifest::parse_manifest(yaml).expect("pod");
        let mut t = pod("kind: Pod\nspec: {containers: [{name: a}]}\n");
        let mut c = t.spec.containers[0].clone();
        assert!(add_service_account_volume(&mut t.spec, &mut c));
        assert_eq!(
            c.volume_mounts.as_ref().map(|m| m[0].mount_path.as_str()),
            Some(SERVICE_ACCOUNT_MOUNT_PATH)
        );
        assert_eq!(t.spec.volumes.as_ref().map(Vec::len), Some(1));
        let mut t = pod(
            "kind: Pod\nspec: {automountServiceAccountToken: false, containers: [{name: a}]}\n",
        );
        let mut c = t.spec.containers[0].clone();
        assert!(!add_service_account_volume(&mut t.spec, &mut c));
        let mut t = pod(
            "kind: Pod\nspec: {containers: [{name: a, volumeMounts: [{name: x, mountPath: \
             /var/run/secrets/kubernetes.io/serviceaccount/}]}], volumes: [{name: x, emptyDir: {}}]}\n",
        );
        let mut c = t.spec.containers[0].clone();
        assert!(!add_service_account_volume(&mut t.spec, &mut c));
    }
}

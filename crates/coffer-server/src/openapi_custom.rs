//! OpenAPI v3 documents of the custom groups (`external-secrets.io` v1 and v1beta1,
//! `coffer.dev` v1), so that `kubectl explain externalsecret.spec` works and kubectl relies on
//! the server's field validation. The schemas name the fields users write (from ESO's API
//! reference and `docs/rotation.md`) and keep unknown fields (`x-kubernetes-preserve-unknown-fields`),
//! as a CRD with a partial schema would.

use serde_json::{Value, json};

use crate::discovery::group_version;
use crate::openapi::{Api, group_kind_schema, object_meta_schema, paths_for};

fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn object(description: &str, properties: Value) -> Value {
    json!({"type": "object", "description": description, "properties": properties,
        "x-kubernetes-preserve-unknown-fields": true})
}

fn free(description: &str) -> Value {
    json!({"type": "object", "description": description, "x-kubernetes-preserve-unknown-fields": true})
}

fn store_ref() -> Value {
    object(
        "SecretStoreRef defines which SecretStore to fetch the ExternalSecret data.",
        json!({
            "name": string("Name of the SecretStore resource"),
            "kind": string("Kind of the SecretStore resource (SecretStore or ClusterSecretStore). Defaults to `SecretStore`"),
        }),
    )
}

fn remote_ref() -> Value {
    object(
        "RemoteRef points to the remote secret and defines which secret (version/property/..) to fetch.",
        json!({
            "key": string("Key is the key used in the Provider, mandatory"),
            "property": string("Used to select a specific property of the Provider value (if a map), if supported"),
            "version": string("Used to select a specific version of the Provider value, if supported"),
            "decodingStrategy": string("Used to define a decoding Strategy: Base64, Base64URL, Auto or None"),
        }),
    )
}

fn external_secret_spec() -> Value {
    object(
        "ExternalSecretSpec defines the desired state of ExternalSecret.",
        json!({
            "refreshInterval": string("RefreshInterval is the amount of time before the values are read again from the SecretStore provider, e.g. 1h, 15m. Defaults to 1h."),
            "refreshPolicy": string("RefreshPolicy determines how the ExternalSecret should be refreshed: CreatedOnce, Periodic (default) or OnChange."),
            "secretStoreRef": store_ref(),
            "target": object("ExternalSecretTarget defines the Kubernetes Secret to be created.", json!({
                "name": string("The name of the Secret resource to be managed. Defaults to the .metadata.name of the ExternalSecret resource"),
                "creationPolicy": string("CreationPolicy defines rules on how to create the resulting Secret: Owner (default), Orphan, Merge or None"),
                "deletionPolicy": string("DeletionPolicy defines rules on how to delete the resulting Secret: Retain (default), Delete or Merge"),
                "template": free("Template defines a blueprint for the created Secret resource."),
            })),
            "data": {"type": "array", "description": "Data defines the connection between the Kubernetes Secret keys and the Provider data",
                "items": object("ExternalSecretData defines the connection between the Kubernetes Secret key (spec.data.<key>) and the Provider data.", json!({
                    "secretKey": string("The key in the Kubernetes Secret to store the value."),
                    "remoteRef": remote_ref(),
                }))},
            "dataFrom": {"type": "array", "description": "DataFrom is used to fetch all properties from a specific Provider data. If multiple entries are specified, the Secret keys are merged in the specified order",
                "items": free("extract, find or rewrite")},
        }),
    )
}

fn store_spec() -> Value {
    object(
        "SecretStoreSpec defines the desired state of SecretStore.",
        json!({
            "provider": object("Used to configure the provider. Only one provider may be set", json!({
                "aws": free("AWS configures this store to sync secrets using AWS Secret Manager provider"),
                "vault": free("Vault configures this store to sync secrets using Hashi provider"),
                "azurekv": free("AzureKV configures this store to sync secrets using Azure Key Vault provider"),
            })),
            "refreshInterval": {"type": "integer", "description": "Used to configure store refresh interval in seconds. Empty or 0 will default to the controller config."},
            "conditions": {"type": "array", "description": "Used to constrain a ClusterSecretStore to specific namespaces.", "items": free("namespaceSelector, namespaces, namespaceRegexes")},
        }),
    )
}

fn rotation_spec() -> Value {
    object(
        "SecretRotationSpec says which Secret to rotate, when, how the new value is made, and where it is set.",
        json!({
            "secretName": string("The Secret (in the SecretRotation's namespace) whose value is rotated."),
            "schedule": object("When to rotate: an interval or a cron schedule.", json!({
                "interval": string("Rotate this long after the last rotation, e.g. 24h."),
                "cron": string("A five-field cron schedule, e.g. `0 3 * * *`."),
            })),
            "generator": free("What makes the new value: password, randomBytes, ed25519, rsa or tlsCertificate."),
            "gracePeriod": string("How long the previous value must stay valid after a rotation, e.g. 1h."),
            "target": free("Where the value is set: none, or postgres (singleUser or alternatingUsers)."),
            "consumers": {"type": "array", "description": "Who to tell after a rotation.", "items": free("a consumer")},
        }),
    )
}

/// The document of one custom group-version.
pub fn document(group: &'static str, version: &'static str) -> Value {
    let schema: &'static str = if group == "coffer.dev" {
        "dev.coffer.v1"
    } else if version == "v1" {
        "io.external-secrets.v1"
    } else {
        "io.external-secrets.v1beta1"
    };
    let prefix: &'static str = match (group, version) {
        ("coffer.dev", _) => "/apis/coffer.dev/v1",
        (_, "v1") => "/apis/external-secrets.io/v1",
        _ => "/apis/external-secrets.io/v1beta1",
    };
    let api = Api {
        group,
        version,
        prefix,
        schema,
    };
    let gv = group_version(group, version).expect("BUG: every custom group-version is served");
    let mut paths = serde_json::Map::new();
    for r in gv.resources {
        paths.extend(paths_for(&api, r));
    }
    let status =
        free("The observed state, written by the controller through the status subresource.");
    let kinds: Vec<(&str, &str, Value)> = if group == "coffer.dev" {
        vec![(
            "SecretRotation",
            "SecretRotation rotates a Secret on a schedule, with zero downtime for its consumers.",
            rotation_spec(),
        )]
    } else {
        vec![
            (
                "ExternalSecret",
                "ExternalSecret is the Schema for the external-secrets API.",
                external_secret_spec(),
            ),
            (
                "ClusterExternalSecret",
                "ClusterExternalSecret is the Schema for the clusterexternalsecrets API.",
                free(
                    "ClusterExternalSecretSpec: externalSecretSpec, externalSecretName, namespaceSelectors, refreshTime.",
                ),
            ),
            (
                "SecretStore",
                "SecretStore represents a secure external location for storing secrets, which can be referenced as part of `storeRef` fields.",
                store_spec(),
            ),
            (
                "ClusterSecretStore",
                "ClusterSecretStore represents a secure external location for storing secrets, which can be referenced as part of `storeRef` fields.",
                store_spec(),
            ),
        ]
    };
    let mut schemas = serde_json::Map::new();
    for (kind, description, spec) in kinds {
        let mut s = group_kind_schema(
            group,
            version,
            kind,
            description,
            json!({"spec": spec, "status": status.clone()}),
        );
        s["x-kubernetes-preserve-unknown-fields"] = json!(true);
        schemas.insert(format!("{schema}.{kind}"), s);
    }
    schemas.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".to_owned(),
        object_meta_schema(),
    );
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Coffer", "version": format!("{group}/{version}")},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

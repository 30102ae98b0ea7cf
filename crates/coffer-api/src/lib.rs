//! Coffer's API types: Kubernetes object shapes, validation and `Status` errors. No I/O.
//!
//! Object types are `k8s-openapi`'s, re-exported as [`k8s_openapi`]. The storage codec encodes
//! them exactly as kube-apiserver stores them in etcd (`k8s\0` + `runtime.Unknown` + protobuf
//! from `k8s-pb`) and decodes both that and JSON: start with [`encode_for_storage`] and
//! [`decode_from_storage`], which work for every [`StorageObject`] (Secret, ConfigMap,
//! Namespace, ServiceAccount).
//!
//! The API rules live beside the codec, worded exactly as kube-apiserver words them
//! (`reference/k8s-api.md` §7.2, §8–§11): [`FieldError`] and [`invalid_message`] for 422s,
//! `validate_*_create` / `validate_*_update` for Secret, ConfigMap, Namespace and
//! ServiceAccount, [`LabelSelector`] / [`FieldSelector`], [`strategic_merge`],
//! [`apply_merge_patch`], [`apply_json_patch`], and [`age`] for the Table `Age` column. Secret
//! data never enters an error text. Server-side apply and `managedFields` are [`apply`] and
//! [`update_managed_fields`] over an [`ApplySchema`], with field sets in `FieldsV1` form
//! ([`FieldSet`]). Secret bytes held in memory go in [`SecretValue`] and [`SecretData`], which
//! zeroize on drop and never print their values.
//!
//! What this crate is not: it opens no files or sockets, starts no runtime, and logs nothing.
#![forbid(unsafe_code)]

mod age;
mod apply;
mod apply_schema;
mod codec;
mod field_error;
mod field_selector;
mod fieldpath;
mod go_json;
mod names;
mod object_meta;
mod patch;
mod secret;
mod selectors;
mod typed;
mod validation;

// The public interface.
pub use age::{age, human_duration};
pub use apply::{
    ApplyError, BEFORE_FIRST_APPLY, Conflict, Conflicts, FIELD_MANAGER_MAX_LEN, FieldManager,
    LAST_APPLIED_ANNOTATION, apply, update_managed_fields,
};
pub use apply_schema::ApplySchema;
pub use codec::{
    CodecError, PROTOBUF_MAGIC, RequestObject, StorageObject, decode_from_storage, decode_request,
    encode_for_storage, prepare_for_storage,
};
pub use field_error::{
    FieldError, FieldErrorKind, FieldValue, aggregate, go_json_escape, go_quote, index_path,
    invalid_message, key_path,
};
pub use field_selector::{FieldRequirement, FieldSelector};
pub use fieldpath::{FieldPath, FieldSet, FieldsV1Error, PathElement};
pub use go_json::json_object_error;
pub use k8s_openapi;
pub use names::{
    DNS1123_LABEL_MAX_LEN, DNS1123_SUBDOMAIN_MAX_LEN, GENERATED_NAME_ALPHABET,
    GENERATED_SUFFIX_LEN, MAX_GENERATED_PREFIX_LEN, NameRule, QUALIFIED_NAME_MAX_LEN,
    generate_name, is_config_key, is_dns1123_label, is_dns1123_subdomain, is_path_segment_name,
    is_qualified_name, is_valid_label_value,
};
pub use object_meta::{
    STANDARD_FINALIZERS, Scope, TOTAL_ANNOTATION_SIZE_LIMIT, prepare_meta_for_update,
    validate_annotations, validate_finalizer_name, validate_finalizers, validate_labels,
    validate_object_meta, validate_object_meta_update, validate_owner_references,
};
pub use patch::{PatchError, apply_json_patch, apply_merge_patch, strategic_merge};
pub use secret::{SecretData, SecretValue};
pub use selectors::{LabelSelector, Operator, Requirement, RequirementError, SelectorError};
pub use typed::SchemaError;
pub use validation::{
    MAX_SECRET_SIZE, SERVICE_ACCOUNT_NAME_ANNOTATION, merge_string_data, secret_type,
    validate_configmap_create, validate_configmap_update, validate_namespace_create,
    validate_namespace_update, validate_secret_create, validate_secret_update,
    validate_service_account_create, validate_service_account_update,
};

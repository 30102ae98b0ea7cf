//! The REST handlers shared by every served kind (`reference/k8s-api.md` §5, §8, §11, §12):
//! routes dispatch on the resource name to generic handlers over [`ApiKind`].

use std::sync::Arc;

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use coffer_api::k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, NamespaceStatus, Secret, ServiceAccount,
};
use coffer_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::authn::UserInfo;
use crate::body::{self, FieldValidation};
use crate::kinds::{Admission, ApiKind};
use crate::listing::{ListParams, ListStart, list_meta};
use crate::negotiate::{self, Output, PatchType};
use crate::registry::ListRequest;
use crate::state::AppState;
use crate::status::{ApiError, ApiResult};
use crate::watch;
use crate::withhold::Redactor;
use coffer_api::{FieldSelector, LabelSelector};

mod apply;

/// Routes for resources: `/api/v1/...` (core) and `/apis/{group}/{version}/...`.
pub fn router() -> Router<AppState> {
    let mut router = Router::new();
    for prefix in ["/api/{version}", "/apis/{group}/{version}"] {
        router = router
            .route(
                &format!("{prefix}/{{resource}}"),
                get(collection_get).post(collection_post),
            )
            .route(
                &format!("{prefix}/{{resource}}/{{name}}"),
                get(item_get)
                    .put(item_put)
                    .patch(item_patch)
                    .delete(item_delete),
            )
            .route(
                &format!("{prefix}/{{resource}}/{{name}}/{{subresource}}"),
                get(subresource_get)
                    .put(subresource_put)
                    .patch(subresource_patch)
                    .post(subresource_post),
            )
            .route(
                &format!("{prefix}/namespaces/{{namespace}}/{{resource}}"),
                get(collection_get)
                    .post(collection_post)
                    .put(subresource_put)
                    .delete(collection_delete),
            )
            .route(
                &format!("{prefix}/namespaces/{{namespace}}/{{resource}}/{{name}}"),
                get(item_get)
                    .put(item_put)
                    .patch(item_patch)
                    .delete(item_delete),
            )
            .route(
                &format!("{prefix}/namespaces/{{namespace}}/{{resource}}/{{name}}/{{subresource}}"),
                get(subresource_get)
                    .put(subresource_put)
                    .patch(subresource_patch)
                    .post(subresource_post),
            );
    }
    router
}

/// What a resource path names: `/api/v1/namespaces/ns/secrets/s1` is group `""`, namespace
/// `ns`, resource `secrets`, name `s1`.
pub struct Target {
    /// The API group, empty for core.
    pub group: String,
    /// The version.
    pub version: String,
    /// The namespace, for namespaced paths.
    pub namespace: Option<String>,
    /// The plural resource.
    pub resource: String,
    /// The object name, for item paths.
    pub name: Option<String>,
    /// The subresource (`token`, `status`, `finalize`).
    pub subresource: Option<String>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Target {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, ApiError> {
        Target::parse(parts.uri.path()).ok_or(ApiError::UnknownPath)
    }
}

impl Target {
    /// Reads a resource path the way the routes in [`router`] match it (a static segment
    /// beats a parameter, so `namespaces/{namespace}/{resource}` wins over
    /// `{resource}/{name}/{subresource}`), percent-decoding each segment. Parsed here rather
    /// than through axum's `Path<HashMap>`, which allocates a map per request on the GET path.
    pub fn parse(path: &str) -> Option<Target> {
        let mut segments = path.strip_prefix('/')?.split('/');
        let (group, version) = match segments.next()? {
            "api" => (String::new(), segment(segments.next()?)?),
            "apis" => (segment(segments.next()?)?, segment(segments.next()?)?),
            _ => return None,
        };
        crate::discovery::group_version(&group, &version)?;
        // Up to five raw segments; only the ones kept are decoded into strings.
        let mut raw = [None::<&str>; 5];
        for slot in &mut raw {
            *slot = segments.next();
        }
        if segments.next().is_some() {
            return None;
        }
        // `Some(None)`: absent; `None`: present but empty or not UTF-8 (no such path).
        let decoded = |raw: Option<&str>| match raw {
            None => Some(None),
            Some(raw) => segment(raw).map(Some),
        };
        let (namespace, resource, name, subresource) = match raw {
            [
                Some("namespaces"),
                Some(namespace),
                Some(resource),
                name,
                subresource,
            ] => (
                Some(segment(namespace)?),
                segment(resource)?,
                decoded(name)?,
                decoded(subresource)?,
            ),
            [Some(resource), name, subresource, None, None] => (
                None,
                segment(resource)?,
                decoded(name)?,
                decoded(subresource)?,
            ),
            _ => return None,
        };
        let mut target = Target {
            group,
            version,
            namespace,
            resource,
            name,
            subresource,
        };
        // `/api/v1/namespaces/{name}/status` and `/finalize` are the namespace's own
        // subresources, not collections inside it (kube's RequestInfo special case).
        if target.group.is_empty()
            && target.name.is_none()
            && matches!(target.resource.as_str(), "status" | "finalize")
            && let Some(ns) = target.namespace.take()
        {
            target.subresource = Some(std::mem::replace(
                &mut target.resource,
                "namespaces".to_owned(),
            ));
            target.name = Some(ns);
        }
        Some(target)
    }

    /// The namespace of a namespaced path.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The object name, empty for collections.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// The kind must be namespaced exactly when the path has a namespace.
    fn check_scope<K: ApiKind>(&self) -> ApiResult<()> {
        if K::info().namespaced == self.namespace.is_some() {
            Ok(())
        } else {
            Err(ApiError::UnknownPath)
        }
    }
}

/// One path segment, percent-decoded; `None` for an empty segment (no route matches one) or
/// one that does not decode to UTF-8.
fn segment(raw: &str) -> Option<String> {
    if raw.is_empty() {
        return None;
    }
    if !raw.contains('%') {
        return Some(raw.to_owned());
    }
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// Query parameters of list, watch and write requests.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApiQuery {
    watch: Option<String>,
    resource_version: Option<String>,
    /// `resourceVersionMatch` (LIST only, §12.1).
    resource_version_match: Option<String>,
    /// `sendInitialEvents` (WatchList; forbidden on a LIST).
    send_initial_events: Option<bool>,
    label_selector: Option<String>,
    field_selector: Option<String>,
    limit: Option<usize>,
    #[serde(rename = "continue")]
    continue_: Option<String>,
    dry_run: Option<String>,
    field_validation: Option<String>,
    timeout_seconds: Option<u64>,
    allow_watch_bookmarks: Option<bool>,
    /// `fieldManager`: who owns the fields a write sets (§11.4).
    field_manager: Option<String>,
    /// `force`: an apply takes conflicting fields over (apply patches only).
    force: Option<String>,
}

impl ApiQuery {
    fn is_watch(&self) -> bool {
        matches!(self.watch.as_deref(), Some("true" | "1"))
    }

    /// `dryRun=All`.
    pub fn dry_run(&self) -> ApiResult<bool> {
        match self.dry_run.as_deref() {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::BadRequest(format!(
                "dryRun: Unsupported value: {other:?}: supported values: \"All\""
            ))),
        }
    }
}

/// Runs `$body` with `K` bound to the kind served as `$group`/`$resource`.
#[macro_export]
#[doc(hidden)]
macro_rules! dispatch {
    ($target:expr, |$k:ident| $body:expr) => {{
        match ($target.group.as_str(), $target.resource.as_str()) {
            ("", "secrets") => {
                type $k = coffer_api::k8s_openapi::api::core::v1::Secret;
                $body
            }
            ("", "configmaps") => {
                type $k = coffer_api::k8s_openapi::api::core::v1::ConfigMap;
                $body
            }
            ("", "serviceaccounts") => {
                type $k = coffer_api::k8s_openapi::api::core::v1::ServiceAccount;
                $body
            }
            ("", "namespaces") => {
                type $k = coffer_api::k8s_openapi::api::core::v1::Namespace;
                $body
            }
            ($crate::kinds::RBAC_GROUP, "roles") => {
                type $k = coffer_api::k8s_openapi::api::rbac::v1::Role;
                $body
            }
            ($crate::kinds::RBAC_GROUP, "rolebindings") => {
                type $k = coffer_api::k8s_openapi::api::rbac::v1::RoleBinding;
                $body
            }
            ($crate::kinds::RBAC_GROUP, "clusterroles") => {
                type $k = coffer_api::k8s_openapi::api::rbac::v1::ClusterRole;
                $body
            }
            ($crate::kinds::RBAC_GROUP, "clusterrolebindings") => {
                type $k = coffer_api::k8s_openapi::api::rbac::v1::ClusterRoleBinding;
                $body
            }
            ($crate::kinds::ESO_GROUP, "secretstores") => {
                type $k = $crate::kinds::SecretStore;
                $body
            }
            ($crate::kinds::ESO_GROUP, "clustersecretstores") => {
                type $k = $crate::kinds::ClusterSecretStore;
                $body
            }
            ($crate::kinds::ESO_GROUP, "externalsecrets") => {
                type $k = $crate::kinds::ExternalSecret;
                $body
            }
            ($crate::kinds::ESO_GROUP, "clusterexternalsecrets") => {
                type $k = $crate::kinds::ClusterExternalSecret;
                $body
            }
            ($crate::kinds::COFFER_GROUP, "secretrotations") => {
                type $k = $crate::kinds::SecretRotation;
                $body
            }
            _ => Err(ApiError::UnknownPath),
        }
    }};
}

/// GET on a collection: list or watch. Without a namespace in the path a namespaced kind is
/// listed across all namespaces.
async fn collection_get(
    State(state): State<AppState>,
    Extension(user): Extension<Arc<UserInfo>>,
    target: Target,
    Query(q): Query<ApiQuery>,
    headers: HeaderMap,
) -> Response {
    if target.subresource.is_some() {
        return crate::subresources::get(&state, &target, &headers)
            .await
            .into_response();
    }
    let r: ApiResult<Response> = dispatch!(target, |K| {
        if target.namespace.is_some() && !K::info().namespaced {
            Err(ApiError::UnknownPath)
        } else {
            list::<K>(&state, &user, target.namespace(), &q, &headers).await
        }
    });
    r.into_response()
}

async fn collection_post(
    State(state): State<AppState>,
    Extension(user): Extension<Arc<UserInfo>>,
    target: Target,
    Query(q): Query<ApiQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = crate::reviews::handle(&state, &user, &target, &headers, &body).await {
        return r.into_response();
    }
    let r: ApiResult<Response> = dispatch!(target, |K| {
        match target.check_scope::<K>() {
            Ok(()) => create::<K>(&state, &user, target.namespace(), &q, &headers, &body).await,
            Err(e) => Err(e),
        }
    });
    r.into_response()
}

async fn collection_delete(
    State(state): State<AppState>,
    target: Target,
    Query(q): Query<ApiQuery>,
) -> Response {
    let r: ApiResult<Response> = dispatch!(target, |K| {
        match (target.check_scope::<K>(), target.namespace()) {
            (Ok(()), Some(ns)) => delete_collection::<K>(&state, ns, &q).await,
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err(ApiError::UnknownPath),
        }
    });
    r.into_response()
}

/// The target of a request the item GET route would take (`GET .../{resource}/{name}`), for
/// the server's direct dispatch of that route (`server::direct_read`).
pub fn item_read_target<B>(req: &axum::http::Request<B>) -> Option<Target> {
    if req.method() != axum::http::Method::GET {
        return None;
    }
    Target::parse(req.uri().path()).filter(|t| t.name.is_some() && t.subresource.is_none())
}

/// [`item_get`] for a request dispatched directly.
pub async fn read_item(state: AppState, target: Target, req: axum::extract::Request) -> Response {
    let (parts, _body) = req.into_parts();
    item_get(State(state), target, parts.headers).await
}

async fn item_get(State(state): State<AppState>, target: Target, headers: HeaderMap) -> Response {
    let r: ApiResult<Response> = dispatch!(target, |K| {
        match target.check_scope::<K>() {
            Ok(()) => read::<K>(&state, target.namespace(), target.name(), &headers).await,
            Err(e) => Err(e),
        }
    });
    r.into_response()
}

async fn item_put(
    State(state): State<AppState>,
    Extension(user): Extension<Arc<UserInfo>>,
    target: Target,
    Query(q): Query<ApiQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r: ApiResult<Response> = dispatch!(target, |K| {
        match target.check_scope::<K>() {
            Ok(()) => {
                replace::<K>(
                    &state,
                    &user,
                    target.namespace(),
                    target.name(),
                    &q,
                    &headers,
                    &body,
                )
                .await
            }
            Err(e) => Err(e),
        }
    });
    r.into_response()
}

async fn item_patch(
    State(state): State<AppState>,
    Extension(user): Extension<Arc<UserInfo>>,
    target: Target,
    Query(q): Query<ApiQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r: ApiResult<Response> = dispatch!(target, |K| {
        match target.check_scope::<K>() {
            Ok(()) => {
                patch::<K>(
                    &state,
                    &user,
                    target.namespace(),
                    target.name(),
                    &q,
                    &headers,
                    &body,
                )
                .await
            }
            Err(e) => Err(e),
        }
    });
    r.into_response()
}

async fn item_delete(
    State(state): State<AppState>,
    target: Target,
    Query(q): Query<ApiQuery>,
    body: Bytes,
) -> Response {
    if target.group.is_empty() && target.resource == "namespaces" && target.namespace.is_none() {
        return delete_namespace(&state, target.name(), &q)
            .await
            .into_response();
    }
    let r: ApiResult<Response> = dispatch!(target, |K| {
        match target.check_scope::<K>() {
            Ok(()) => delete::<K>(&state, target.namespace(), target.name(), &q, &body).await,
            Err(e) => Err(e),
        }
    });
    r.into_response()
}

async fn subresource_get(
    State(state): State<AppState>,
    target: Target,
    headers: HeaderMap,
) -> Response {
    crate::subresources::get(&state, &target, &headers)
        .await
        .into_response()
}

async fn subresource_put(
    State(state): State<AppState>,
    target: Target,
    Query(q): Query<ApiQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    crate::subresources::put(&state, &target, &q, &headers, &body)
        .await
        .into_response()
}

async fn subresource_patch(
    State(state): State<AppState>,
    target: Target,
    Query(q): Query<ApiQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    crate::subresources::patch(&state, &target, &q, &headers, &body)
        .await
        .into_response()
}

async fn subresource_post(
    State(state): State<AppState>,
    Extension(user): Extension<Arc<UserInfo>>,
    target: Target,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    crate::subresources::post(&state, &user, &target, &headers, &body)
        .await
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Generic verbs.

/// LIST or WATCH (§12).
async fn list<K: ApiKind>(
    state: &AppState,
    user: &UserInfo,
    namespace: Option<&str>,
    q: &ApiQuery,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let output = negotiate::output(headers, true)?;
    let (labels, fields) = selectors::<K>(q)?;
    let redactor = Redactor::for_request::<K>(state, user);
    // Every object as stored, in JSON: items come from the object cache (`cache.rs`).
    let (labels_empty, fields_empty) = (labels.is_empty(), fields.is_empty());
    let as_stored = output == Output::Json
        && !q.is_watch()
        && labels_empty
        && fields_empty
        && redactor.is_none();
    let filter = move |o: &K| {
        labels.matches(o.metadata().labels.as_ref().unwrap_or(&EMPTY_LABELS))
            && fields.matches(|f| match f {
                "metadata.name" => o.metadata().name.clone(),
                "metadata.namespace" => o.metadata().namespace.clone(),
                other => o.field(other),
            })
    };
    if q.is_watch() {
        return watch::serve::<K>(
            state,
            namespace,
            watch::WatchRequest {
                resource_version: q.resource_version.as_deref(),
                timeout_seconds: q.timeout_seconds,
                bookmarks: q.allow_watch_bookmarks == Some(true),
                output,
            },
            Box::new(filter),
            redactor,
        )
        .await;
    }
    let start = ListStart::parse(ListParams {
        resource_version: q.resource_version.as_deref(),
        resource_version_match: q.resource_version_match.as_deref(),
        continue_token: q.continue_.as_deref(),
        send_initial_events: q.send_initial_events,
    })?;
    if as_stored {
        let page = state
            .list_encoded::<K>(
                namespace,
                q.limit.unwrap_or(0),
                start.start_after.clone(),
                start.revision,
            )
            .await
            .map_err(|e| start.expired(e))?;
        start.fresh_enough(page.revision)?;
        let meta = list_meta(page.revision, page.next.as_deref(), Some(page.remaining));
        return Ok(json_list::<K>(&meta, &page.items));
    }
    // kube counts the remaining items only when no selector filtered the list.
    let unfiltered = labels_empty && fields_empty;
    let page = state
        .list_at::<K>(
            namespace,
            &ListRequest {
                limit: q.limit.unwrap_or(0),
                start_after: start.start_after.clone(),
                filter: &filter,
            },
            start.revision,
        )
        .await
        .map_err(|e| start.expired(e))?;
    start.fresh_enough(page.revision)?;
    let mut items = page.items;
    let mut withheld = 0;
    if let Some(redactor) = redactor {
        for item in &mut items {
            withheld += usize::from(redactor.apply(item));
        }
    }
    let meta = list_meta(
        page.revision,
        page.next.as_deref(),
        unfiltered.then_some(page.remaining),
    );
    let mut response = match output {
        Output::Table(v) => table_response(crate::table::table(&items, v, meta, true), v),
        Output::Json => {
            // Items are serialised straight into the body, never through `Value`s.
            let mut encoded = Vec::with_capacity(items.len());
            for item in &items {
                encoded.push(serde_json::to_vec(item).map_err(ApiError::internal)?);
            }
            json_list::<K>(&meta, &encoded)
        }
    };
    if withheld > 0 {
        add_warnings(&mut response, &[crate::withhold::warning(withheld)]);
    }
    Ok(response)
}

/// GET one object.
async fn read<K: ApiKind>(
    state: &AppState,
    namespace: Option<&str>,
    name: &str,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let output = negotiate::output(headers, true)?;
    Ok(match output {
        Output::Table(v) => {
            // Boxed, so the JSON path's future (the common GET) stays small.
            let obj: K = Box::pin(state.get(namespace, name)).await?;
            table_response(
                crate::table::table(std::slice::from_ref(&obj), v, json!({}), true),
                v,
            )
        }
        // From the object cache when it holds the stored revision (`cache.rs`).
        Output::Json => json_bytes(state.get_encoded::<K>(namespace, name).await?),
    })
}

/// POST: create (§8.2).
async fn create<K: ApiKind>(
    state: &AppState,
    user: &UserInfo,
    namespace: Option<&str>,
    q: &ApiQuery,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let dry_run = q.dry_run()?;
    let decoded = body::decode::<K>(
        headers,
        body,
        FieldValidation::parse(q.field_validation.as_deref())?,
    )?;
    let mut obj = decoded.object;
    let meta = obj.metadata_mut();
    match (namespace, meta.namespace.as_deref()) {
        (Some(url), Some(body_ns)) if !body_ns.is_empty() && body_ns != url => {
            return Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request".to_owned(),
            ));
        }
        _ => meta.namespace = namespace.map(str::to_owned),
    }
    if let Some(ns) = namespace {
        require_active_namespace::<K>(state, ns, meta.name.as_deref().unwrap_or("")).await?;
    }
    let meta = obj.metadata_mut();
    if meta.name.as_deref().unwrap_or("").is_empty()
        && let Some(prefix) = meta.generate_name.as_deref().filter(|p| !p.is_empty())
    {
        meta.name = Some(generate_name(prefix));
    }
    set_system_fields(obj.metadata_mut());
    obj.normalise(None);
    let manager = apply::update_manager(q, headers, "CreateOptions")?;
    apply::record_update::<K>(None, &mut obj, &manager)?;
    store_created(state, user, namespace, obj, dry_run, &decoded.warnings).await
}

/// The end of every create (POST, and an apply that finds nothing): admission, validation,
/// the write, read-your-writes for RBAC kinds, a new namespace's `default` ServiceAccount,
/// and the 201 with the decoder's warnings.
async fn store_created<K: ApiKind>(
    state: &AppState,
    user: &UserInfo,
    namespace: Option<&str>,
    obj: K,
    dry_run: bool,
    warnings: &[String],
) -> ApiResult<Response> {
    obj.admit(None, &Admission::new(state, user, namespace, "create"))?;
    invalid_if_any::<K>(&obj, None)?;
    let created = state.create(namespace, obj, dry_run).await?;
    state.rbac.wait_for::<K>(revision_of(&created)).await;
    if K::RESOURCE == "namespaces" && !dry_run {
        create_default_service_account(state, created.metadata().name.as_deref().unwrap_or(""))
            .await?;
    }
    let mut response = json_ok(&created);
    *response.status_mut() = StatusCode::CREATED;
    add_warnings(&mut response, warnings);
    Ok(response)
}

/// PUT: replace (§8.5).
async fn replace<K: ApiKind>(
    state: &AppState,
    user: &UserInfo,
    namespace: Option<&str>,
    name: &str,
    q: &ApiQuery,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let dry_run = q.dry_run()?;
    let decoded = body::decode::<K>(
        headers,
        body,
        FieldValidation::parse(q.field_validation.as_deref())?,
    )?;
    let new = decoded.object;
    if let Some(body_name) = new.metadata().name.as_deref()
        && body_name != name
    {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let manager = apply::update_manager(q, headers, "UpdateOptions")?;
    let ctx = Admission::new(state, user, namespace, "update");
    let (updated, _) = state
        .update::<K, _>(namespace, name, dry_run, |current| {
            finish_update(
                new.clone(),
                &current,
                namespace,
                name,
                &ctx,
                apply::Ownership::Update(&manager),
            )
        })
        .await?;
    state.rbac.wait_for::<K>(revision_of(&updated)).await;
    let mut response = json_ok(&updated);
    add_warnings(&mut response, &decoded.warnings);
    Ok(response)
}

/// PATCH: JSON, merge and strategic merge patches (§11), and server-side apply (§11.4).
async fn patch<K: ApiKind>(
    state: &AppState,
    user: &UserInfo,
    namespace: Option<&str>,
    name: &str,
    q: &ApiQuery,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let dry_run = q.dry_run()?;
    let kind = negotiate::patch_type(headers)?;
    if kind == PatchType::Apply {
        return apply::patch::<K>(state, user, namespace, name, q, body).await;
    }
    let manager = apply::update_manager(q, headers, "PatchOptions")?;
    let validation = FieldValidation::parse(q.field_validation.as_deref())?;
    let patch: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "error decoding patch: invalid JSON at line {}, column {}",
            e.line(),
            e.column()
        ))
    })?;
    let mut warnings = Vec::new();
    let ctx = Admission::new(state, user, namespace, "update");
    let (updated, _) = state
        .update::<K, _>(namespace, name, dry_run, |current| {
            let doc = serde_json::to_value(&current).map_err(ApiError::internal)?;
            let doc = match kind {
                PatchType::Json => coffer_api::apply_json_patch(&doc, &patch),
                PatchType::Merge => coffer_api::apply_merge_patch(&doc, &patch),
                PatchType::Strategic | PatchType::Apply => {
                    coffer_api::strategic_merge(&doc, &patch, K::kind())
                }
            }
            .map_err(|e| patch_error::<K>(&e, name))?;
            let decoded = body::decode_value::<K>(doc, validation)?;
            warnings = decoded.warnings;
            finish_update(
                decoded.object,
                &current,
                namespace,
                name,
                &ctx,
                apply::Ownership::Update(&manager),
            )
        })
        .await?;
    state.rbac.wait_for::<K>(revision_of(&updated)).await;
    let mut response = json_ok(&updated);
    add_warnings(&mut response, &warnings);
    Ok(response)
}

/// DELETE one object (§8.9).
async fn delete<K: ApiKind>(
    state: &AppState,
    namespace: Option<&str>,
    name: &str,
    q: &ApiQuery,
    body: &[u8],
) -> ApiResult<Response> {
    let options = DeleteOptions::parse(body)?;
    let dry_run = q.dry_run()? || options.dry_run.iter().any(|d| d == "All");
    let pre = options.preconditions.unwrap_or_default();
    let current: K = state.get(namespace, name).await?;
    if current
        .metadata()
        .finalizers
        .as_ref()
        .is_some_and(|f| !f.is_empty())
    {
        // Finalizers hold the object: mark it (deletionTimestamp) and answer with it; the
        // update that removes the last finalizer deletes it (§8.9).
        let (marked, _) = state
            .update::<K, _>(namespace, name, dry_run, |mut obj| {
                if let Some(uid) = pre.uid.as_deref()
                    && obj.metadata().uid.as_deref() != Some(uid)
                {
                    return Err(ApiError::Conflict {
                        resource: K::group_resource(),
                        name: name.to_owned(),
                        why: format!(
                            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                            obj.metadata().uid.clone().unwrap_or_default()
                        ),
                    });
                }
                let meta = obj.metadata_mut();
                if meta.deletion_timestamp.is_none() {
                    meta.deletion_timestamp = Some(Time(crate::kinds::now()));
                    meta.deletion_grace_period_seconds = Some(0);
                }
                Ok(obj)
            })
            .await?;
        return Ok(json_ok(&marked));
    }
    let gone: K = state
        .delete(
            namespace,
            name,
            pre.uid.as_deref(),
            pre.resource_version.as_deref(),
            dry_run,
        )
        .await?;
    // The delete's own revision is later than the object's last one.
    state.rbac.wait_for::<K>(revision_of(&gone) + 1).await;
    Ok(json_ok(&json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "kind": K::RESOURCE, "uid": gone.metadata().uid},
    })))
}

/// DELETE a collection: every object matching the selectors; answers with the deleted list.
async fn delete_collection<K: ApiKind>(
    state: &AppState,
    namespace: &str,
    q: &ApiQuery,
) -> ApiResult<Response> {
    let dry_run = q.dry_run()?;
    let (labels, fields) = selectors::<K>(q)?;
    let filter = |o: &K| {
        labels.matches(o.metadata().labels.as_ref().unwrap_or(&EMPTY_LABELS))
            && fields.matches(|f| match f {
                "metadata.name" => o.metadata().name.clone(),
                "metadata.namespace" => o.metadata().namespace.clone(),
                other => o.field(other),
            })
    };
    let page = state
        .list::<K>(
            Some(namespace),
            &ListRequest {
                limit: 0,
                start_after: None,
                filter: &filter,
            },
        )
        .await?;
    let mut deleted = Vec::new();
    for obj in page.items {
        let name = obj.metadata().name.clone().unwrap_or_default();
        match state
            .delete::<K>(Some(namespace), &name, None, None, dry_run)
            .await
        {
            Ok(gone) => deleted.push(gone),
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json_ok(&json!({
        "kind": format!("{}List", K::kind()),
        "apiVersion": K::served_api_version(),
        "metadata": {"resourceVersion": page.revision.to_string()},
        "items": deleted,
    })))
}

/// Deleting a namespace deletes everything in it, then the namespace (§9.1). The namespace
/// is first marked `Terminating` so nothing new is created in it meanwhile.
async fn delete_namespace(state: &AppState, name: &str, q: &ApiQuery) -> ApiResult<Response> {
    if q.dry_run()? {
        let ns: Namespace = state.get(None, name).await?;
        return Ok(json_ok(&ns));
    }
    let (terminating, _) = state
        .update::<Namespace, _>(None, name, false, |mut ns| {
            ns.status = Some(NamespaceStatus {
                phase: Some("Terminating".to_owned()),
                conditions: None,
            });
            if ns.metadata.deletion_timestamp.is_none() {
                ns.metadata.deletion_timestamp = Some(Time(crate::kinds::now()));
            }
            Ok(ns)
        })
        .await?;
    purge::<Secret>(state, name).await?;
    purge::<ConfigMap>(state, name).await?;
    purge::<ServiceAccount>(state, name).await?;
    state
        .delete::<Namespace>(None, name, None, None, false)
        .await?;
    Ok(json_ok(&terminating))
}

async fn purge<K: ApiKind>(state: &AppState, namespace: &str) -> ApiResult<()> {
    let all = |_: &K| true;
    let page = state
        .list::<K>(
            Some(namespace),
            &ListRequest {
                limit: 0,
                start_after: None,
                filter: &all,
            },
        )
        .await?;
    for obj in page.items {
        let name = obj.metadata().name.clone().unwrap_or_default();
        match state
            .delete::<K>(Some(namespace), &name, None, None, false)
            .await
        {
            Ok(_) | Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Helpers.

static EMPTY_LABELS: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();

/// The label and field selectors of a request, with the fields `K` supports.
fn selectors<K: ApiKind>(q: &ApiQuery) -> ApiResult<(LabelSelector, FieldSelector)> {
    let bad = |e: coffer_api::SelectorError| ApiError::BadRequest(e.to_string());
    let labels = LabelSelector::parse(q.label_selector.as_deref().unwrap_or("")).map_err(bad)?;
    let mut supported = vec!["metadata.name", "metadata.namespace"];
    supported.extend(K::selectable_fields());
    let fields =
        FieldSelector::parse(q.field_selector.as_deref().unwrap_or(""), &supported).map_err(bad)?;
    Ok((labels, fields))
}

/// A patch that cannot be applied: 400 for an undecodable patch, 422 (cause on `patch`) for
/// one that does not apply to the object.
fn patch_error<K: ApiKind>(e: &coffer_api::PatchError, name: &str) -> ApiError {
    match e.status_code() {
        422 => ApiError::Invalid {
            kind: K::kind().to_owned(),
            name: name.to_owned(),
            causes: vec![crate::status::Cause {
                reason: "FieldValueInvalid".to_owned(),
                field: "patch".to_owned(),
                message: format!(
                    "Invalid value: {}",
                    e.detail().unwrap_or("the patch could not be applied")
                ),
            }],
        },
        500 => ApiError::internal(e),
        _ => ApiError::BadRequest(e.to_string()),
    }
}

/// The revision an object was read or written at.
fn revision_of<K: ApiKind>(obj: &K) -> u64 {
    obj.metadata()
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

impl<'a> Admission<'a> {
    fn new(
        state: &'a AppState,
        user: &'a UserInfo,
        namespace: Option<&'a str>,
        verb: &'static str,
    ) -> Self {
        Admission {
            state,
            user,
            namespace: namespace.unwrap_or(""),
            verb,
        }
    }
}

/// Keeps what the server owns (uid, creation time, name, namespace), records who owns the
/// fields the update changes (`managedFields`), and validates it.
fn finish_update<K: ApiKind>(
    mut new: K,
    current: &K,
    namespace: Option<&str>,
    name: &str,
    ctx: &Admission<'_>,
    ownership: apply::Ownership<'_>,
) -> ApiResult<K> {
    let cur = current.metadata();
    let meta = new.metadata_mut();
    meta.name = Some(name.to_owned());
    meta.namespace = namespace.map(str::to_owned);
    if meta.uid.as_deref().unwrap_or("").is_empty() {
        meta.uid.clone_from(&cur.uid);
    }
    meta.creation_timestamp.clone_from(&cur.creation_timestamp);
    meta.deletion_timestamp.clone_from(&cur.deletion_timestamp);
    meta.generate_name.clone_from(&cur.generate_name);
    new.normalise(Some(current));
    if let apply::Ownership::Update(manager) = ownership {
        apply::record_update(Some(current), &mut new, manager)?;
    }
    new.admit(Some(current), ctx)?;
    invalid_if_any::<K>(&new, Some(current))?;
    Ok(new)
}

fn invalid_if_any<K: ApiKind>(obj: &K, old: Option<&K>) -> ApiResult<()> {
    let causes = obj.validate(old);
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::Invalid {
        kind: K::kind().to_owned(),
        name: obj.metadata().name.clone().unwrap_or_default(),
        causes,
    })
}

/// Sets what the server owns on a new object: uid and creation time; clears the rest.
pub fn set_system_fields(meta: &mut ObjectMeta) {
    meta.uid = Some(uuid::Uuid::new_v4().to_string());
    meta.creation_timestamp = Some(Time(crate::kinds::now()));
    meta.resource_version = None;
    meta.self_link = None;
    meta.deletion_timestamp = None;
    meta.deletion_grace_period_seconds = None;
    meta.generation = None;
}

/// `generateName` + 5 random characters from kube-apiserver's alphabet.
fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let prefix: String = prefix.chars().take(58).collect();
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// 404 when the namespace is missing, 403 while it is being deleted (NamespaceLifecycle).
async fn require_active_namespace<K: ApiKind>(
    state: &AppState,
    namespace: &str,
    name: &str,
) -> ApiResult<()> {
    let ns: Namespace = state.get(None, namespace).await?;
    if ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating") {
        return Err(ApiError::NamespaceTerminating {
            resource: K::group_resource(),
            name: name.to_owned(),
            namespace: namespace.to_owned(),
        });
    }
    Ok(())
}

/// The `default` ServiceAccount the ServiceAccount controller would create.
pub async fn create_default_service_account(state: &AppState, namespace: &str) -> ApiResult<()> {
    let mut sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("default".to_owned()),
            namespace: Some(namespace.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    set_system_fields(&mut sa.metadata);
    match state.create(Some(namespace), sa, false).await {
        Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates a namespace if it does not exist (bootstrap of `default`, `kube-system`, ...).
pub async fn ensure_namespace(state: &AppState, name: &str) -> ApiResult<()> {
    if state.try_get::<Namespace>(None, name).await?.is_none() {
        let mut ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..Default::default()
            },
            ..Default::default()
        };
        set_system_fields(&mut ns.metadata);
        ns.normalise(None);
        match state.create(None, ns, false).await {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    create_default_service_account(state, name).await
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DeleteOptions {
    #[serde(default)]
    dry_run: Vec<String>,
    preconditions: Option<Preconditions>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Preconditions {
    uid: Option<String>,
    resource_version: Option<String>,
}

impl DeleteOptions {
    fn parse(body: &[u8]) -> ApiResult<Self> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(DeleteOptions::default());
        }
        serde_json::from_slice(body).map_err(|e| {
            ApiError::BadRequest(format!(
                "invalid DeleteOptions at line {}, column {}",
                e.line(),
                e.column()
            ))
        })
    }
}

/// A 200 `<Kind>List` of already encoded items, written straight into one buffer.
fn json_list<K: ApiKind>(meta: &Value, items: &[impl AsRef<[u8]>]) -> Response {
    let size: usize = items.iter().map(|i| i.as_ref().len() + 1).sum();
    let mut body = Vec::with_capacity(size + 256);
    body.extend_from_slice(br#"{"kind":"#);
    let head = serde_json::to_writer(&mut body, &format!("{}List", K::kind()))
        .and_then(|()| {
            body.extend_from_slice(br#","apiVersion":"#);
            serde_json::to_writer(&mut body, &K::served_api_version())
        })
        .and_then(|()| {
            body.extend_from_slice(br#","metadata":"#);
            serde_json::to_writer(&mut body, meta)
        });
    if let Err(e) = head {
        return ApiError::internal(e).into_response();
    }
    body.extend_from_slice(br#","items":["#);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item.as_ref());
    }
    body.extend_from_slice(b"]}");
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A 200 JSON response of an already encoded body.
fn json_bytes(body: bytes::Bytes) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from(body),
    )
        .into_response()
}

/// A 200 JSON response.
pub fn json_ok<T: serde::Serialize>(body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

fn table_response(table: Value, version: &str) -> Response {
    let content_type = if version == "v1" {
        negotiate::TABLE_V1
    } else {
        negotiate::TABLE_V1BETA1
    };
    let bytes = serde_json::to_vec(&table).expect("BUG: a Value always serializes");
    ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
}

fn add_warnings(response: &mut Response, warnings: &[String]) {
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(v) = HeaderValue::from_str(&text) {
            response.headers_mut().append("Warning", v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Target;

    /// group, version, namespace, resource, name, subresource.
    type Parts = (
        String,
        String,
        Option<String>,
        String,
        Option<String>,
        Option<String>,
    );

    fn parts(path: &str) -> Option<Parts> {
        Target::parse(path).map(|t| {
            (
                t.group,
                t.version,
                t.namespace,
                t.resource,
                t.name,
                t.subresource,
            )
        })
    }

    fn some(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn paths_parse_as_the_routes_match_them() {
        let core = |ns: Option<&str>, r: &str, n: Option<&str>, s: Option<&str>| {
            Some((
                String::new(),
                "v1".to_owned(),
                ns.map(str::to_owned),
                r.to_owned(),
                n.map(str::to_owned),
                s.map(str::to_owned),
            ))
        };
        assert_eq!(parts("/api/v1/secrets"), core(None, "secrets", None, None));
        assert_eq!(
            parts("/api/v1/namespaces"),
            core(None, "namespaces", None, None)
        );
        assert_eq!(
            parts("/api/v1/namespaces/ns1"),
            core(None, "namespaces", Some("ns1"), None)
        );
        assert_eq!(
            parts("/api/v1/namespaces/ns1/secrets"),
            core(Some("ns1"), "secrets", None, None)
        );
        assert_eq!(
            parts("/api/v1/namespaces/ns1/secrets/s1"),
            core(Some("ns1"), "secrets", Some("s1"), None)
        );
        assert_eq!(
            parts("/api/v1/namespaces/ns1/serviceaccounts/sa/token"),
            core(Some("ns1"), "serviceaccounts", Some("sa"), Some("token"))
        );
        // The namespace's own subresources.
        assert_eq!(
            parts("/api/v1/namespaces/ns1/finalize"),
            core(None, "namespaces", Some("ns1"), Some("finalize"))
        );
        assert_eq!(
            parts("/api/v1/namespaces/ns1/status"),
            core(None, "namespaces", Some("ns1"), Some("status"))
        );
        // Percent-encoded segments are decoded.
        assert_eq!(
            parts("/api/v1/namespaces/ns1/secrets/a%2Eb"),
            core(Some("ns1"), "secrets", Some("a.b"), None)
        );
        let rbac = parts("/apis/rbac.authorization.k8s.io/v1/namespaces/ns1/roles/r1").unwrap();
        assert_eq!(
            (
                rbac.0.as_str(),
                rbac.1.as_str(),
                rbac.2,
                rbac.3.as_str(),
                rbac.4
            ),
            (
                "rbac.authorization.k8s.io",
                "v1",
                some("ns1"),
                "roles",
                some("r1")
            )
        );
    }

    #[test]
    fn paths_no_route_matches_are_refused() {
        for path in [
            "/api/v1",
            "/api/v2/secrets",
            "/apis/v1/secrets",
            "/apis/nope.example.com/v1/things",
            "/api/v1/secrets/",
            "/api/v1//secrets",
            "/api/v1/secrets/a/b/c",
            "/api/v1/namespaces/ns1/secrets/s1/versions/extra",
            "/api/v1/namespaces/ns1/secrets/%FF",
            "/other/v1/secrets",
            "api/v1/secrets",
        ] {
            assert!(Target::parse(path).is_none(), "{path} should not parse");
        }
    }
}

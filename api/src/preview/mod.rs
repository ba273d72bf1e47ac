//! The preview server: host-based routing to one version (`<versionId>.<domain>`) or a
//! project's latest (`<label>.<domain>`), files from the artifact store, SPA fallback; methods,
//! conditional requests and byte ranges in [`http`]; who may open a project's previews (private
//! previews, share links and their cookie) in [`gate`], with share tokens in [`token`]. Every
//! answer says `X-Robots-Tag: noindex` unless the project is `indexable`.

pub mod gate;
mod http;
pub mod near;
pub mod token;

use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use kiln_shared::db::versions;
use kiln_shared::domain::{BuildStatus, PreviewAccess, ProjectId, UserId, VersionId};
use kiln_shared::store::encoding::accepts_gzip;
use kiln_shared::store::{Encoding, Manifest, ManifestEntry};

use crate::error::ApiError;
use crate::state::{AppState, Deployed};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";
/// A private project's files: no shared cache keeps them, and a browser asks again each time
/// (so a revoked share stops at once).
const PRIVATE: &str = "private, no-cache";

/// A 404 of the preview listener: a problem like the API's, revalidated by caches.
fn not_found(message: impl Into<String>) -> HttpResponse {
    let mut res = actix_web::ResponseError::error_response(&ApiError::NotFound(message.into()));
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(REVALIDATE));
    res
}

/// Serves any request that reaches the preview listener.
#[tracing::instrument(skip_all, fields(host, path = %req.path()))]
pub async fn serve(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (mut res, indexable) = answer(&req, &state).await?;
    if !indexable {
        res.headers_mut().insert(
            header::HeaderName::from_static(gate::ROBOTS.0),
            HeaderValue::from_static(gate::ROBOTS.1),
        );
    }
    Ok(res)
}

/// The answer, and whether the project's previews may be indexed.
async fn answer(req: &HttpRequest, state: &AppState) -> Result<(HttpResponse, bool), ApiError> {
    if let Some(refused) = http::refuse_method(req) {
        return Ok((refused, false));
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(req.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default()
        .to_ascii_lowercase();
    tracing::Span::current().record("host", host.as_str());
    let Some(label) = state.urls.label_of_host(&host) else {
        return Ok((not_found(format!("unknown preview host {host:?}")), false));
    };
    let on_version_host = VersionId::parse(label).is_ok();
    let (version, deployed, cache) = if let Ok(id) = VersionId::parse(label) {
        let Some(d) = deployed(state, id).await? else {
            return Ok((not_found(format!("version {id} is not deployed")), false));
        };
        (id, d, IMMUTABLE)
    } else {
        let Some((user, project, id)) = latest_of_label(state, label).await? else {
            return Ok((not_found(format!("no deployed version for {label}")), false));
        };
        let Some(d) = deployed(state, id).await? else {
            return Ok((not_found(format!("version {id} is not deployed")), false));
        };
        if (&d.user, &d.project) != (&user, &project) {
            return Ok((not_found(format!("no deployed version for {label}")), false));
        }
        (id, d, REVALIDATE)
    };
    let owner = (&deployed.user, &deployed.project);
    let Some(gate) = gate::gate(state, owner.0, owner.1).await? else {
        return Ok((not_found(format!("no deployed version for {label}")), false));
    };
    let cache = match gate.access {
        PreviewAccess::Public => cache,
        PreviewAccess::Private => PRIVATE,
    };
    let res = match gate::admit(req, state, &gate, owner, version, on_version_host) {
        gate::Admit::Answer(res) => res,
        gate::Admit::Serve => file(req, state, version, &deployed.manifest_key, cache).await?,
    };
    Ok((res, gate.indexable))
}

/// The file a request names of a deployed version.
async fn file(
    req: &HttpRequest,
    state: &AppState,
    version: VersionId,
    manifest_key: &str,
    cache: &'static str,
) -> Result<HttpResponse, ApiError> {
    let manifest = output_manifest(state, manifest_key).await?;
    let Some((path, entry)) = resolve(&manifest, req.path()) else {
        return Ok(not_found(format!(
            "{} not found in version {version}",
            req.path()
        )));
    };
    // A range is taken of the content (never of the stored gzip form), so `If-Range` compares
    // with the content's tag; a request without a usable range negotiates as usual.
    let content = Representation::content(entry);
    let range = http::ranged(req, &content.etag, entry.size);
    let representation = match range {
        http::Ranged::Whole => Representation::of(req, entry),
        _ => content,
    };
    if representation.not_modified(req) {
        let mut reply = HttpResponse::NotModified();
        representation.headers(&mut reply);
        return Ok(reply.insert_header((header::CACHE_CONTROL, cache)).finish());
    }
    if range == http::Ranged::Unsatisfiable {
        return Ok(http::unsatisfiable(entry.size));
    }
    let (body, encoding) = state.artifacts.read_as(entry, representation.gzip).await?;
    tracing::debug!(%version, file = path, ?encoding, ?range, "served");
    let (mut reply, body) = match range {
        http::Ranged::Part { start, end } if (end as usize) < body.len() => {
            let mut reply = HttpResponse::PartialContent();
            reply.insert_header((
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{}", body.len()),
            ));
            (reply, body.slice(start as usize..=end as usize))
        }
        _ => (HttpResponse::Ok(), body),
    };
    representation.headers(&mut reply);
    if let Some(name) = encoding.http_name() {
        reply.insert_header((header::CONTENT_ENCODING, name));
    }
    Ok(reply
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_str(&entry.content_type)
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
        ))
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header(("X-Kiln-Version", version.to_string()))
        .body(body))
}

/// Which form of a file a response carries: the blob's stored gzip bytes (when it is stored
/// so and the client accepts gzip) or its content. Each form has its own entity tag, and a
/// file stored compressed varies by `Accept-Encoding` (shared caches keep both forms apart).
pub(crate) struct Representation {
    pub gzip: bool,
    pub etag: String,
    vary: bool,
}

impl Representation {
    pub fn of(req: &HttpRequest, entry: &ManifestEntry) -> Self {
        let stored_gzip = entry.inline.is_none() && entry.encoding == Encoding::Gzip;
        let gzip = stored_gzip
            && req
                .headers()
                .get(header::ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .is_some_and(accepts_gzip);
        let etag = if gzip {
            format!("\"{}.gz\"", entry.hash)
        } else {
            format!("\"{}\"", entry.hash)
        };
        Self {
            gzip,
            etag,
            vary: stored_gzip,
        }
    }

    /// The file's content whatever the client accepts (what a range is taken of).
    pub fn content(entry: &ManifestEntry) -> Self {
        Self {
            gzip: false,
            etag: format!("\"{}\"", entry.hash),
            vary: entry.inline.is_none() && entry.encoding == Encoding::Gzip,
        }
    }

    /// Whether the client already has this form (`If-None-Match`: lists, weak tags, `*`).
    pub fn not_modified(&self, req: &HttpRequest) -> bool {
        http::not_modified(req, &self.etag)
    }

    pub fn headers(&self, reply: &mut actix_web::HttpResponseBuilder) {
        reply.insert_header((header::ETAG, self.etag.clone()));
        if self.vary {
            reply.insert_header((header::VARY, "Accept-Encoding"));
        }
    }
}

/// The project a label names and its latest version: the label's project from Redis
/// (Postgres when Redis has nothing), then its KV pointer (Postgres when the KV has nothing).
async fn latest_of_label(
    state: &AppState,
    label: &str,
) -> Result<Option<(UserId, ProjectId, VersionId)>, ApiError> {
    let project = match state.queue.label(label).await? {
        Some(p) => Some((p.user_id, p.project_id)),
        None => versions::project_by_label(&state.db, label).await?,
    };
    let Some((user, project)) = project else {
        return Ok(None);
    };
    let latest = match state.queue.latest(&user, &project).await? {
        Some(p) => Some(p.latest_version_id),
        None => versions::latest_deployed(&state.db, &user, &project)
            .await?
            .map(|v| v.id),
    };
    Ok(latest.map(|id| (user, project, id)))
}

/// What the preview server needs of a deployed version: its output manifest's key and its
/// project (cached: none of it ever changes); `None` when it is not deployed.
async fn deployed(state: &AppState, id: VersionId) -> Result<Option<Deployed>, ApiError> {
    if let Some(d) = state.cache.deployed(id) {
        return Ok(Some(d));
    }
    let Some(v) = versions::get(&state.db, id).await? else {
        return Ok(None);
    };
    let (BuildStatus::Deployed, Some(key)) = (v.status, v.output_manifest_key) else {
        return Ok(None);
    };
    let d = Deployed {
        manifest_key: key,
        user: v.user_id,
        project: v.project_id,
    };
    state.cache.put_deployed(id, d.clone());
    Ok(Some(d))
}

/// A deployed version's output manifest (cached: it never changes).
async fn output_manifest(state: &AppState, key: &str) -> Result<Arc<Manifest>, ApiError> {
    if let Some(m) = state.cache.manifest(key) {
        return Ok(m);
    }
    let Some(m) = state.artifacts.get_manifest(key).await? else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "output manifest {key} is missing"
        )));
    };
    let m = Arc::new(m);
    state.cache.put_manifest(key.to_owned(), m.clone());
    Ok(m)
}

/// The file a URL path names: the file itself, a directory's `index.html`, or (for a path with
/// no extension, as client-side routes have) the SPA fallback `/index.html`.
pub(crate) fn resolve<'m>(manifest: &'m Manifest, url_path: &str) -> Option<(&'m str, &'m ManifestEntry)> {
    let decoded = percent_decode(url_path)?;
    let path = decoded.trim_start_matches('/');
    if path.split('/').any(|s| s == "..") {
        return None;
    }
    let lookup = |p: &str| manifest.files.get_key_value(p).map(|(k, v)| (k.as_str(), v));
    let candidates = if path.is_empty() || path.ends_with('/') {
        vec![format!("{path}index.html")]
    } else {
        vec![
            path.to_owned(),
            format!("{path}/index.html"),
            format!("{path}.html"),
        ]
    };
    if let Some(hit) = candidates.iter().find_map(|c| lookup(c)) {
        return Some(hit);
    }
    let last = path.rsplit('/').next().unwrap_or_default();
    if !last.contains('.') {
        return lookup("index.html");
    }
    None
}

/// A URL path with its `%XX` escapes decoded (`percent-encoding`), or `None` when an escape is
/// not two hex digits (the crate would keep it as text), the result is not UTF-8 or holds a NUL.
fn percent_decode(s: &str) -> Option<String> {
    let escapes_are_hex = s.match_indices('%').all(|(i, _)| {
        s.get(i + 1..i + 3)
            .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    if !escapes_are_hex {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|d| d.into_owned())
        .filter(|d| !d.contains('\0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(paths: &[&str]) -> Manifest {
        let mut m = Manifest::default();
        for p in paths {
            m.insert(p, format!("h-{p}"), 1);
        }
        m
    }

    #[test]
    fn resolves_files_directories_and_spa_routes() {
        let m = manifest(&[
            "index.html",
            "assets/app.js",
            "docs/index.html",
            "about.html",
            "a b.txt",
        ]);
        let r = |p: &str| resolve(&m, p).map(|(k, _)| k.to_owned());
        assert_eq!(r("/").as_deref(), Some("index.html"));
        assert_eq!(r("/assets/app.js").as_deref(), Some("assets/app.js"));
        assert_eq!(r("/docs/").as_deref(), Some("docs/index.html"));
        assert_eq!(r("/docs").as_deref(), Some("docs/index.html"));
        assert_eq!(r("/about").as_deref(), Some("about.html"));
        assert_eq!(r("/a%20b.txt").as_deref(), Some("a b.txt"));
        assert_eq!(r("/settings/profile").as_deref(), Some("index.html"));
        assert_eq!(r("/assets/missing.js"), None);
        assert_eq!(r("/../etc/passwd"), None);
        assert_eq!(r("/%zz"), None);
        // A sign is no hex digit (the fuzz target `relative_path` found "%+0" read as NUL).
        assert_eq!(r("/a%+0b.txt"), None);
        assert_eq!(r("/%-1"), None);
    }
}

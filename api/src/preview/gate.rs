//! Who may open a project's previews: its gate (this instance's copy of a public one, else the
//! KV's cached copy, else Postgres's `projects` row, then cached), and for a private project the share a request carries, in
//! the query (`?kiln_share=`: its first use sets a cookie for the host and redirects to the
//! same URL without it) or in that cookie. A project with no row has no previews (a deleted
//! project's previews answer 404 at once on every instance: a missing row is never cached).
//!
//! A public project ignores tokens: a request that carries one is served as it is.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::Utc;
use kiln_shared::db::projects::share;
use kiln_shared::domain::{PreviewAccess, ProjectId, UserId, VersionId};
use kiln_shared::redis::ProjectGate;

use super::token::{Share, PARAM};
use crate::error::ApiError;
use crate::state::AppState;

/// The header that keeps search engines away from previews (unless the project says
/// `indexable: true`).
pub const ROBOTS: (&str, &str) = ("x-robots-tag", "noindex");

/// What a request may do with a project's preview.
pub enum Admit {
    /// Serve it.
    Serve,
    /// Answer this instead (the private page, or the redirect that sets the share's cookie).
    Answer(HttpResponse),
}

/// The project's gate; `None` when it has no row.
pub async fn gate(
    state: &AppState,
    user: &UserId,
    project: &ProjectId,
) -> Result<Option<ProjectGate>, ApiError> {
    if let Some(g) = state.near_gates.get(user, project) {
        return Ok(Some(g));
    }
    let epoch = state.near_gates.epoch();
    let seen = state.queue.project_gate(user, project).await?;
    if let Some(g) = seen.gate.clone() {
        state.near_gates.fill(user, project, &g, epoch);
        return Ok(Some(g));
    }
    let Some((settings, key)) = share::gate(&state.db, user, project).await? else {
        return Ok(None);
    };
    let g = ProjectGate {
        access: settings.access(),
        indexable: settings.indexable.unwrap_or(false),
        share_key: key.map(|k| STANDARD.encode(k)),
    };
    // Not cached when the row changed since `seen` (the copy may be the old one).
    match state.queue.fill_project_gate(user, project, &g, &seen).await {
        Ok(true) => state.near_gates.fill(user, project, &g, epoch),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "cannot cache a project's gate"),
    }
    Ok(Some(g))
}

/// Whether `req` may open `version` of the project (on its own host: `on_version_host`).
pub fn admit(
    req: &HttpRequest,
    state: &AppState,
    gate: &ProjectGate,
    (user, project): (&UserId, &ProjectId),
    version: VersionId,
    on_version_host: bool,
) -> Admit {
    if gate.access == PreviewAccess::Public {
        return Admit::Serve;
    }
    let key = gate.share_key.as_deref().and_then(|k| STANDARD.decode(k).ok());
    let check = |token: &str| -> Option<Share> {
        let key = key.as_deref()?;
        Share::verify(token, key, user, project, version, on_version_host, Utc::now())
            .inspect_err(|why| tracing::info!(%why, "a share token was refused"))
            .ok()
    };
    let (in_query, rest) = split_query(req.query_string());
    if let Some(token) = in_query {
        return match check(&token) {
            Some(share) => Admit::Answer(set_cookie(req, state, &token, &share, &rest)),
            None => Admit::Answer(private_page()),
        };
    }
    match req.cookie(PARAM) {
        Some(c) if check(c.value()).is_some() => Admit::Serve,
        _ => Admit::Answer(private_page()),
    }
}

/// The share token of a query string (its last `kiln_share`), and the rest of the query as it
/// came.
fn split_query(query: &str) -> (Option<String>, String) {
    let mut token = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some((PARAM, value)) => token = Some(value.to_owned()),
            _ if pair == PARAM => token = Some(String::new()),
            _ => rest.push(pair),
        }
    }
    (token, rest.join("&"))
}

/// The first use of a share link: its cookie for this host, and a redirect to the same URL
/// without the token.
fn set_cookie(req: &HttpRequest, state: &AppState, token: &str, share: &Share, rest: &str) -> HttpResponse {
    let left = (share.expires_at - Utc::now()).num_seconds().max(1);
    let cookie = Cookie::build(PARAM, token.to_owned())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.urls.scheme == "https")
        .max_age(actix_web::cookie::time::Duration::seconds(left))
        .finish();
    // One leading slash: `//host/...` would send the browser to another site.
    let path = format!("/{}", req.path().trim_start_matches(['/', '\\']));
    let location = match rest {
        "" => path,
        q => format!("{path}?{q}"),
    };
    HttpResponse::Found()
        .cookie(cookie)
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// The 401 of a private preview without a valid share.
pub fn private_page() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(PRIVATE_PAGE)
}

const PRIVATE_PAGE: &str = "<!doctype html>
<html lang=en>
<meta charset=utf-8>
<meta name=robots content=noindex>
<meta name=viewport content=\"width=device-width, initial-scale=1\">
<title>This preview is private</title>
<body style=\"font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem; line-height: 1.5\">
<h1>This preview is private</h1>
<p>Only people with a share link can open it. Ask the project's owner for a link (links expire,
and the owner can revoke them all at once); if you had one, it has expired or been revoked.</p>
</body>
</html>
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_taken_out_of_the_query_and_the_rest_kept() {
        assert_eq!(split_query(""), (None, String::new()));
        assert_eq!(split_query("a=1&b=%20"), (None, "a=1&b=%20".into()));
        assert_eq!(
            split_query("a=1&kiln_share=t.k&b=2"),
            (Some("t.k".into()), "a=1&b=2".into())
        );
        assert_eq!(split_query("kiln_share=x"), (Some("x".into()), String::new()));
        assert_eq!(split_query("kiln_shares=x"), (None, "kiln_shares=x".into()));
    }
}

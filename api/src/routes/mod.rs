//! One module per resource, [`parse`] (a request's JSON body and query string, read the same way
//! by every route), [`openapi`] (the document generated from the handlers), and [`serve`], which
//! registers a handler at the path and methods its `#[utoipa::path]` documents.

pub mod builders;
pub mod builds;
pub mod env;
pub mod events;
pub mod health;
pub mod lifecycle;
pub mod logs;
pub mod metrics;
pub mod openapi;
pub mod parse;
pub mod project;
pub mod projects;
pub mod redeploy;
pub mod tokens;
pub mod versions;
pub mod webhooks;

use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, Responder};
use utoipa::openapi::path::HttpMethod;

/// Registers `handler` at the path and methods of its `#[utoipa::path]` (`P`, the `__path_*`
/// type the macro generates), taken relative to `scope` (`"/v1"` inside the `/v1` scope).
pub(crate) fn serve<P, F, Args>(cfg: &mut web::ServiceConfig, scope: &str, handler: F)
where
    P: utoipa::Path,
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    let documented = P::path();
    let local = documented
        .strip_prefix(scope)
        .unwrap_or_else(|| panic!("{documented} is not under {scope}"));
    let pattern = actix_pattern(local);
    for method in P::methods() {
        cfg.route(&pattern, web::method(http_method(&method)).to(handler.clone()));
    }
}

/// A documented path as an actix pattern: `{path}`, a file's path, takes the rest of the URL
/// (slashes included).
pub(crate) fn actix_pattern(documented: &str) -> String {
    documented.replace("{path}", "{path:.*}")
}

/// An OpenAPI method as actix's.
fn http_method(m: &HttpMethod) -> Method {
    match m {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

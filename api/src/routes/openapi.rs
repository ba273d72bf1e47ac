//! `GET /openapi.json`: the API's OpenAPI 3.1 description, built from [`ROUTES`], the same table
//! the tests walk to check every documented route is served.

use actix_web::HttpResponse;
use serde_json::{json, Value};

/// One documented route: method, path, summary, whether it needs authentication, its answers.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub auth: bool,
    pub responses: &'static [(u16, &'static str)],
}

const ERRORS: &[(u16, &str)] = &[
    (400, "malformed request"),
    (401, "missing or wrong credentials"),
    (408, "the request body did not arrive within KILN_REQUEST_BODY_TIMEOUT_SECS"),
    (429, "the client address's rate limit (KILN_RATE_LIMIT_PER_IP; user tokens and bad or missing credentials only): {error, retryAfter}, Retry-After seconds"),
    (431, "the request line and headers are over KILN_MAX_HEADER_KB"),
];

/// The answers of every public route besides its own (`/healthz` and `/readyz` are not rate
/// limited: load balancers poll them).
const PUBLIC_ERRORS: &[(u16, &str)] = &[(431, "the request line and headers are over KILN_MAX_HEADER_KB")];

/// A used-up fleet-wide quota (admission).
const QUOTA: (u16, &str) = (
    429,
    "a quota is used up (KILN_QUOTA_NEW_PROJECTS_PER_HOUR for a project's first build, per user; KILN_QUOTA_REBUILDS_PER_HOUR for later builds, per project), nothing stored or queued: {error, retryAfter, quota: new_projects_per_user | rebuilds_per_project, limit, window}, Retry-After seconds; or the per-IP rate limit",
);

/// The cap on streams per client.
const STREAMS: (u16, &str) = (
    429,
    "KILN_MAX_STREAMS_PER_CLIENT event and log streams are already open from this client address (user tokens): {error, retryAfter}",
);

pub const ROUTES: &[Route] = &[
    Route { method: "get", path: "/healthz", summary: "The process is alive", auth: false, responses: &[(200, "alive")] },
    Route {
        method: "get",
        path: "/readyz",
        summary: "Redis, Postgres and the artifact store are reachable",
        auth: false,
        responses: &[(200, "ready"), (503, "a dependency is unreachable; the error names it")],
    },
    Route { method: "get", path: "/openapi.json", summary: "This document", auth: false, responses: &[(200, "OpenAPI 3.1"), (429, "the client address's rate limit (KILN_RATE_LIMIT_PER_IP): {error, retryAfter}, Retry-After seconds")] },
    Route {
        method: "post",
        path: "/v1/builds",
        summary: "Queue a build: a first build with the full tree, or a rebuild with a delta over baseVersionId (default: latest)",
        auth: true,
        responses: &[
            (202, "queued: {buildId, status, userId, projectId, statusUrl, previewUrl, latestUrl, replaced?}"),
            (409, "another build of the project is queued or running (onConflict: supersede replaces a queued one, cancel-running a running one too): {error, buildId}"),
            (413, "the body is over the size cap"),
            (422, "invalid ids, paths, files, base version, or a reused Idempotency-Key with another body"),
            QUOTA,
            (503, "the queue is unavailable: the build is recorded failed, {error, buildId}"),
        ],
    },
    Route {
        method: "get",
        path: "/v1/builds",
        summary: "List builds newest first; query userId, projectId, status, limit (1-100), before (cursor)",
        auth: true,
        responses: &[(200, "{builds, nextCursor}")],
    },
    Route {
        method: "get",
        path: "/v1/builds/{id}",
        summary: "One build (= version) with its status, error, failed step, metrics, progress (0-100) and latest event",
        auth: true,
        responses: &[(200, "the build"), (404, "unknown build")],
    },
    Route {
        method: "get",
        path: "/v1/builders",
        summary: "The live fleet: builders that heartbeated within the lease, with capacity, running builds and their newest event, versions",
        auth: true,
        responses: &[(200, "{builders, slots, running}"), (503, "Redis is unavailable")],
    },
    Route {
        method: "get",
        path: "/v1/builders/history",
        summary: "Builders' uptime intervals, newest first (?builderId=, ?limit= 1-100)",
        auth: true,
        responses: &[(200, "{intervals}"), (400, "bad builderId or limit")],
    },
    Route {
        method: "post",
        path: "/v1/builds/{id}/cancel",
        summary: "Cancel a queued or running build: it never starts, or its processes are stopped (SIGTERM, then SIGKILL); its project's slot is free at once. Idempotent",
        auth: true,
        responses: &[(200, "the build, cancelled"), (404, "unknown build"), (409, "the build already ended")],
    },
    Route {
        method: "post",
        path: "/v1/builds/{id}/retry",
        summary: "Queue a new build with the sources and base of a failed or cancelled build (retryOf names it)",
        auth: true,
        responses: &[(202, "queued: {buildId, status, statusUrl, previewUrl, latestUrl, retryOf}"), (404, "unknown build"), (409, "the build is not failed or cancelled, or another build of the project is in flight"), QUOTA],
    },
    Route {
        method: "get",
        path: "/v1/builds/{id}/events",
        summary: "A build's events after ?after=N (default 0), at most ?limit= (1-1000, default 100), oldest first",
        auth: true,
        responses: &[(200, "{buildId, events, lastEventId}"), (400, "bad after or limit"), (404, "unknown build")],
    },
    Route {
        method: "get",
        path: "/v1/builds/{id}/events/stream",
        summary: "Server-Sent Events: replays events after Last-Event-ID (or ?after=), then streams live; ends after the final event; heartbeat comments every 15 s",
        auth: true,
        responses: &[(200, "text/event-stream"), (400, "bad Last-Event-ID or after"), (404, "unknown build"), STREAMS],
    },
    Route {
        method: "get",
        path: "/v1/builds/{id}/logs",
        summary: "The build's log (capped, secrets redacted) as text after line ?after=N; ?follow=true streams it as Server-Sent Events (id = line number), resuming after Last-Event-ID, ending with event: end",
        auth: true,
        responses: &[(200, "text/plain (X-Kiln-Log-Last-Line, X-Kiln-Log-Complete) or text/event-stream"), (400, "bad after or follow"), (404, "unknown build"), STREAMS],
    },
    Route {
        method: "post",
        path: "/v1/tokens",
        summary: "A user token for {userId, description?} (operator or back end only); the token is in this answer only",
        auth: true,
        responses: &[(201, "{id, userId, description, createdAt, token}"), (400, "bad userId or description")],
    },
    Route {
        method: "get",
        path: "/v1/tokens",
        summary: "A user's tokens, newest first, never the tokens themselves (?userId=; a user token: its own)",
        auth: true,
        responses: &[(200, "{tokens}"), (400, "no userId"), (404, "another user's (for a user token)")],
    },
    Route {
        method: "delete",
        path: "/v1/tokens/{id}",
        summary: "Revokes a user token (a user token may revoke its own user's)",
        auth: true,
        responses: &[(200, "the token with revokedAt"), (404, "unknown token")],
    },
    Route {
        method: "get",
        path: "/metrics",
        summary: "Prometheus text: this API's counters and the farm-wide gauges (operator or back end only)",
        auth: true,
        responses: &[(200, "text/plain; version=0.0.4")],
    },
    Route {
        method: "post",
        path: "/v1/webhooks",
        summary: "Subscribe {url, eventTypes?, userId?, description?}; the signing secret is in this answer only",
        auth: true,
        responses: &[(201, "the subscription and its secret"), (422, "bad url, event type or userId")],
    },
    Route {
        method: "get",
        path: "/v1/webhooks",
        summary: "Every subscription (without secrets)",
        auth: true,
        responses: &[(200, "{webhooks}")],
    },
    Route {
        method: "get",
        path: "/v1/webhooks/{id}",
        summary: "One subscription (without its secret)",
        auth: true,
        responses: &[(200, "the subscription"), (404, "unknown webhook")],
    },
    Route {
        method: "delete",
        path: "/v1/webhooks/{id}",
        summary: "Delete a subscription and its deliveries",
        auth: true,
        responses: &[(204, "deleted"), (404, "unknown webhook")],
    },
    Route {
        method: "get",
        path: "/v1/webhooks/{id}/deliveries",
        summary: "Deliveries newest first with every attempt; query limit (1-100), before (cursor)",
        auth: true,
        responses: &[(200, "{deliveries, nextCursor}"), (404, "unknown webhook")],
    },
    Route {
        method: "post",
        path: "/v1/webhooks/{id}/deliveries/{deliveryId}/redeliver",
        summary: "Send a delivery's payload again, as a new delivery",
        auth: true,
        responses: &[(202, "the new delivery"), (404, "unknown webhook or delivery")],
    },
    Route {
        method: "get",
        path: "/v1/projects/{userId}/{projectId}/versions",
        summary: "A project's versions newest first",
        auth: true,
        responses: &[(200, "{versions, nextCursor}")],
    },
    Route {
        method: "get",
        path: "/v1/projects/{userId}/{projectId}/latest",
        summary: "The project's latest pointer (KV first, then Postgres)",
        auth: true,
        responses: &[(200, "{latestVersionId, previewUrl, latestUrl, timestamp}"), (404, "no deployed version")],
    },
    Route {
        method: "post",
        path: "/v1/projects/{userId}/{projectId}/rollback",
        summary: "Roll back (or forward) to a deployed version: {versionId}. A new version row and a pointer flip; nothing is rebuilt",
        auth: true,
        responses: &[
            (200, "{version, previewUrl, latestUrl, rolledBackTo}"),
            (404, "not a version of this project"),
            (409, "the target is not deployed, or a build or rollback of the project is in flight"),
        ],
    },
    Route {
        method: "get",
        path: "/v1/projects/{userId}/{projectId}/versions/{a}/diff/{b}",
        summary: "Compare two versions' sources: ?mode=stat (JSON: added/removed/modified with line counts) or ?mode=patch (text/x-diff)",
        auth: true,
        responses: &[(200, "the comparison"), (404, "a version is not in this project")],
    },
    Route {
        method: "get",
        path: "/v1/projects/{userId}/{projectId}/versions/{id}/files",
        summary: "A version's source and output files: path, size, hash, content type",
        auth: true,
        responses: &[(200, "{id, source, output}"), (404, "unknown version")],
    },
    Route {
        method: "get",
        path: "/v1/projects/{userId}/{projectId}/versions/{id}/files/{path}",
        summary: "One source file of a version",
        auth: true,
        responses: &[(200, "the file"), (404, "unknown version or file")],
    },
    Route {
        method: "get",
        path: "/v1/projects/{userId}/{projectId}/versions/{id}/artifact",
        summary: "A zip of the version's output (?source=true: its sources), streamed",
        auth: true,
        responses: &[(200, "application/zip"), (409, "the version has no output")],
    },
    Route {
        method: "post",
        path: "/v1/projects/{userId}/{projectId}/versions/{id}/pin",
        summary: "Pin a version: retention never removes it",
        auth: true,
        responses: &[(200, "the version")],
    },
    Route {
        method: "delete",
        path: "/v1/projects/{userId}/{projectId}/versions/{id}/pin",
        summary: "Unpin a version",
        auth: true,
        responses: &[(200, "the version")],
    },
    Route {
        method: "post",
        path: "/build-preview-for-new-project",
        summary: "Seed-compatible alias of POST /v1/builds",
        auth: true,
        responses: &[(202, "queued, plus {success, versionId}"), QUOTA],
    },
    Route {
        method: "post",
        path: "/rebuild-preview",
        summary: "Seed-compatible alias of POST /v1/builds for a project that has a deployed version",
        auth: true,
        responses: &[(202, "queued, plus {success, versionId}"), QUOTA],
    },
];

pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for r in ROUTES {
        let mut responses = serde_json::Map::new();
        let extra = if r.auth { ERRORS } else { PUBLIC_ERRORS };
        for (code, what) in extra.iter().chain(r.responses) {
            // A route's own description of a code wins over the common one.
            responses.insert(code.to_string(), json!({ "description": what }));
        }
        let security = if r.auth {
            json!([{ "bearer": [] }, { "hmac": [] }])
        } else {
            json!([])
        };
        let entry = paths.entry(r.path.to_owned()).or_insert_with(|| json!({}));
        entry[r.method] = json!({ "summary": r.summary, "security": security, "responses": responses });
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Kiln", "version": env!("CARGO_PKG_VERSION") },
        "components": { "securitySchemes": {
            "bearer": { "type": "http", "scheme": "bearer" },
            "hmac": { "type": "apiKey", "in": "header", "name": "X-Kiln-Signature",
                      "description": "sha256=<hex HMAC-SHA256(secret, \"{X-Kiln-Timestamp}.{METHOD}.{path_and_query}.{body}\")>, or with X-Kiln-Nonce (1-64 of [A-Za-z0-9_-]) \"{X-Kiln-Timestamp}.{X-Kiln-Nonce}.{METHOD}.{path_and_query}.{body}\"; a signature of a request that changes something is accepted once" }
        }},
        "paths": paths,
    })
}

pub async fn openapi(_: crate::guard::Public) -> HttpResponse {
    HttpResponse::Ok().json(document())
}

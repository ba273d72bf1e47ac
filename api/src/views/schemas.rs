//! The OpenAPI schemas of the types the API answers with or reads that are defined outside the
//! routes and views (in `kiln-shared`, `crate::builds`, `crate::diff`): the string enums are
//! built from the enums' own `ALL` tables, and each struct's schema mirrors its type's serde
//! shape, which the tests below check against a real value (a member added to the type and not
//! here fails them).

use std::borrow::Cow;

use kiln_shared::domain::{BuildStatus, EventType, Step};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// A string schema whose values are an enum's `ALL`, named `$name` in the components.
macro_rules! string_enum_schema {
    ($(#[$doc:meta])* $name:ident = $ty:ty, $description:literal) => {
        $(#[$doc])*
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some($description))
                    .enum_values(Some(<$ty>::ALL.iter().map(|v| v.as_str())))
                    .into()
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($ty))
            }
        }
    };
}

string_enum_schema!(
    /// [`BuildStatus`] as a schema.
    BuildStatusSchema = BuildStatus,
    "Where a build (= version) is in its life"
);
string_enum_schema!(
    /// [`Step`] as a schema.
    StepSchema = Step,
    "A step of a build"
);
string_enum_schema!(
    /// [`EventType`] as a schema.
    EventTypeSchema = EventType,
    "The type of a build event (also a webhook's event type)"
);

/// `kiln_shared::db::versions::Metrics`: a build's timings and sizes.
#[derive(ToSchema)]
#[schema(as = Metrics)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct MetricsSchema {
    queue_ms: Option<i64>,
    generate_ms: Option<i64>,
    install_ms: Option<i64>,
    build_ms: Option<i64>,
    /// The checks' phase (typecheck, lint), when the build asked for any.
    check_ms: Option<i64>,
    upload_ms: Option<i64>,
    total_ms: Option<i64>,
    output_bytes: Option<i64>,
    file_count: Option<i32>,
}

/// `kiln_shared::domain::Diagnostic`: one problem a tool reported (or Kiln's own refusal).
#[derive(ToSchema)]
#[schema(as = Diagnostic)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct DiagnosticSchema {
    #[schema(inline)]
    step: StepSchema,
    /// `tsc`, `vite`, `rollup`, `esbuild`, `next`, `sveltekit`, `astro`, `nuxt`, `eslint`,
    /// `pnpm`, `node` or `kiln`.
    tool: String,
    #[schema(pattern = "^(error|warning)$")]
    severity: String,
    /// Relative to the project's root; null when the problem is not in one file.
    file: Option<String>,
    #[schema(minimum = 1)]
    line: Option<u32>,
    #[schema(minimum = 1)]
    column: Option<u32>,
    /// The tool's code (`TS2322`, `ERR_PNPM_NO_MATCHING_VERSION`, `no-unused-vars`) or Kiln's
    /// (`needs_server`, `timeout`…).
    code: Option<String>,
    message: String,
}

/// `kiln_shared::db::events::BuildEvent`: one event of one build; `id` grows by one per event
/// of that build, from 1.
#[derive(ToSchema)]
#[schema(as = BuildEvent)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct BuildEventSchema {
    id: i32,
    build_id: String,
    #[serde(rename = "type")]
    #[schema(inline)]
    kind: EventTypeSchema,
    progress: i16,
    #[schema(value_type = Object)]
    data: (),
    timestamp: chrono::DateTime<chrono::Utc>,
}

/// `crate::builds::estimate::QueueEstimate`: while a build is queued, where it stands (its
/// members are in a build's answer while it is queued only, so none is required).
#[derive(ToSchema)]
#[schema(as = QueueEstimate)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct QueueEstimateSchema {
    /// Builds that start before this one.
    #[schema(required = false)]
    queue_position: i64,
    /// Null when there is nothing to estimate from (see `note`).
    #[schema(required = false)]
    estimated_start_at: Option<chrono::DateTime<chrono::Utc>>,
    #[schema(required = false)]
    estimated_wait_secs: Option<f64>,
    #[schema(required = false)]
    live_builders: u64,
    #[schema(required = false)]
    slots: u64,
    #[schema(required = false)]
    running: i64,
    #[schema(required = false)]
    median_build_secs: Option<f64>,
    #[schema(required = false)]
    note: Option<String>,
}

/// `crate::builds::request::Replaced`: a build replaced by a newer request of its project.
#[derive(ToSchema)]
#[schema(as = Replaced)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ReplacedSchema {
    build_id: String,
    /// `superseded` (it was queued) or `cancelled` (it was running).
    #[schema(inline)]
    status: BuildStatusSchema,
}

/// `crate::builds::request::Queued`: a build just queued.
#[derive(ToSchema)]
#[schema(as = Queued)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct QueuedSchema {
    build_id: String,
    #[schema(inline)]
    status: BuildStatusSchema,
    user_id: String,
    project_id: String,
    /// `/v1/builds/{buildId}` (also the `Location` header).
    status_url: String,
    preview_url: String,
    latest_url: String,
    /// The build of the project this one replaced (`onConflict`), if it replaced one.
    #[schema(required = false)]
    replaced: Option<ReplacedSchema>,
}

/// `kiln_shared::domain::FileInput`: one file of a build request.
#[derive(ToSchema)]
#[schema(as = FileInput)]
#[allow(dead_code)]
pub struct FileInputSchema {
    /// A relative path (no `..`, no absolute path).
    path: String,
    content: String,
    /// How `content` is written: `utf8` (the default) or `base64`.
    #[schema(required = false, value_type = String, pattern = "^(utf8|base64)$")]
    encoding: Option<String>,
    /// Only `"file"` is accepted.
    #[serde(rename = "type")]
    #[schema(required = false)]
    kind: Option<String>,
    /// A Unix mode (a number, or octal digits in a string): a regular file's only; its
    /// permission bits are ignored (sources are written 0644).
    #[schema(required = false, value_type = Option<serde_json::Value>)]
    mode: (),
}

/// `kiln_shared::domain::GeneratorOutput`: a code generator's output, as the seed sent it.
#[derive(ToSchema)]
#[schema(as = GeneratorOutput)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct GeneratorOutputSchema {
    name: Option<String>,
    slug: Option<String>,
    description: Option<String>,
    tech_stack: Option<Vec<String>>,
    /// Free-form, with unique keys.
    #[schema(value_type = Option<Object>)]
    metadata: (),
    #[schema(required = false)]
    template_files: Vec<FileInputSchema>,
    #[schema(required = false)]
    files: Vec<FileInputSchema>,
}

/// `crate::builds::request::BuildRequestBody`: the body of `POST /v1/builds` and of the seed
/// aliases. A field Kiln does not know is refused.
#[derive(ToSchema)]
#[schema(as = BuildRequest)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
pub struct BuildRequestSchema {
    user_id: Option<String>,
    project_id: Option<String>,
    prompt: Option<String>,
    framework: Option<String>,
    /// The version a rebuild's delta applies to (default: the latest deployed).
    base_version_id: Option<String>,
    /// A first build's whole tree, or a rebuild's changed and added files.
    files: Option<Vec<FileInputSchema>>,
    /// A rebuild's deleted paths.
    deleted: Option<Vec<String>>,
    output: Option<GeneratorOutputSchema>,
    /// `reject` (the default: 409), `supersede` or `cancel-running`.
    #[schema(pattern = "^(reject|supersede|cancel-running)$")]
    on_conflict: Option<String>,
    /// Checks to run after the install and before the build script, each `off` (the
    /// default), `warn` (the build deploys; their diagnostics are kept on it) or `fail` (the
    /// build fails at step `check`).
    checks: Option<ChecksSchema>,
    /// One-off overrides of the project's build settings (not `previewAccess` or `indexable`,
    /// which are the project's).
    settings: Option<BuildSettingsSchema>,
    /// One-off plain environment values for the build and checks steps (`{"NAME": "value"}`),
    /// on top of the project's; the same rules as `PUT .../env/{name}`.
    #[schema(value_type = Option<std::collections::HashMap<String, String>>)]
    env: Option<serde_json::Value>,
    /// Build even when a deployed version of the project is identical (same sources,
    /// settings, environment and toolchain), whose output is reused otherwise (`reusedFrom`).
    force: Option<bool>,
}

/// `kiln_shared::domain::Checks`: a build's checks.
#[derive(ToSchema)]
#[schema(as = Checks)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
pub struct ChecksSchema {
    /// `tsc` against the project's tsconfig.json (`tsc -b` for a tsconfig of references).
    #[schema(pattern = "^(off|warn|fail)$")]
    typecheck: Option<String>,
    /// The project's ESLint config, with `--max-warnings=0`.
    #[schema(pattern = "^(off|warn|fail)$")]
    lint: Option<String>,
}

/// `kiln_shared::domain::BuildSettings`: how a project's builds run. Every member is optional
/// (absent: Kiln's default).
#[derive(ToSchema)]
#[schema(as = BuildSettings)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
pub struct BuildSettingsSchema {
    /// Run after Kiln's own dependency install, in the install step, as `sh -c` in the app
    /// folder, as the build (registry network). One line, at most 1024 bytes.
    install_command: Option<String>,
    /// Run instead of `pnpm run build`, as `sh -c` in the app folder. One line, at most 1024
    /// bytes.
    build_command: Option<String>,
    /// The folder to publish, relative to `rootDir`, instead of the detected one.
    output_dir: Option<String>,
    /// The folder holding the app's package.json, relative to the top of the tree (with a
    /// `pnpm-workspace.yaml` at the top, the install runs at the top and the build here).
    root_dir: Option<String>,
    /// The checks builds run unless their request says otherwise.
    checks: Option<ChecksSchema>,
    /// Who may open the previews (a project setting).
    #[schema(pattern = "^(public|private)$")]
    preview_access: Option<String>,
    /// Whether search engines may index the previews (a project setting).
    indexable: Option<bool>,
}

/// `kiln_shared::db::tokens::UserToken`: a user token as listed (never the token itself).
#[derive(ToSchema)]
#[schema(as = UserToken)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct UserTokenSchema {
    id: String,
    user_id: String,
    description: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
    revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `kiln_shared::db::webhooks::Webhook`: a subscription (its secret is shown once, at
/// creation).
#[derive(ToSchema)]
#[schema(as = Webhook)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct WebhookSchema {
    id: String,
    url: String,
    /// Empty: every event type.
    event_types: Vec<EventTypeSchema>,
    user_id: Option<String>,
    description: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// `kiln_shared::db::webhooks::Attempt`: one attempt of a delivery.
#[derive(ToSchema)]
#[schema(as = DeliveryAttempt)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct AttemptSchema {
    n: i32,
    at: chrono::DateTime<chrono::Utc>,
    status_code: Option<i32>,
    error: Option<String>,
    duration_ms: i32,
}

/// `kiln_shared::db::webhooks::Delivery`: a delivery of one event to one subscription.
#[derive(ToSchema)]
#[schema(as = Delivery)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct DeliverySchema {
    id: String,
    webhook_id: String,
    build_id: String,
    event_id: i32,
    #[serde(rename = "type")]
    event_type: String,
    #[schema(pattern = "^(pending|delivered|failed)$")]
    status: String,
    attempts: i32,
    next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
    last_status_code: Option<i32>,
    last_error: Option<String>,
    redelivery_of: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
    delivered_at: Option<chrono::DateTime<chrono::Utc>>,
    #[schema(value_type = Object)]
    payload: (),
    attempt_log: Vec<AttemptSchema>,
}

/// `kiln_shared::db::fleet::Uptime`: one interval during which a builder heartbeated.
#[derive(ToSchema)]
#[schema(as = Uptime)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct UptimeSchema {
    builder_id: String,
    host: String,
    version: String,
    started_at: chrono::DateTime<chrono::Utc>,
    last_seen_at: chrono::DateTime<chrono::Utc>,
    seconds: i64,
}

/// `crate::diff::FileChange`: one changed path of a comparison.
#[derive(ToSchema)]
#[schema(as = FileChange)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct FileChangeSchema {
    path: String,
    #[schema(pattern = "^(added|removed|modified)$")]
    change: String,
    binary: bool,
    additions: u64,
    deletions: u64,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::Utc;
    use kiln_shared::db::events::BuildEvent;
    use kiln_shared::db::fleet::Uptime;
    use kiln_shared::db::tokens::UserToken;
    use kiln_shared::db::versions::Metrics;
    use kiln_shared::db::webhooks::{Attempt, Delivery, DeliveryStatus, Webhook};
    use kiln_shared::domain::{ProjectId, UserId, VersionId};
    use kiln_shared::preview::PreviewUrls;
    use serde::Serialize;

    use super::*;
    use crate::builds::estimate::QueueEstimate;
    use crate::builds::request::{Queued, Replaced};
    use crate::diff::{ChangeKind, FileChange};

    /// `value`'s members are the schema's properties, and every required one is there.
    fn same_shape<S: PartialSchema>(value: impl Serialize) {
        let schema = serde_json::to_value(S::schema()).unwrap();
        let properties: BTreeSet<String> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let required: BTreeSet<String> = schema["required"]
            .as_array()
            .map(|r| r.iter().map(|k| k.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        let value = serde_json::to_value(value).unwrap();
        let members: BTreeSet<String> = value.as_object().unwrap().keys().cloned().collect();
        let name = std::any::type_name::<S>();
        assert!(
            members.is_subset(&properties),
            "{name}: {:?} are not in the schema",
            members.difference(&properties)
        );
        assert!(
            required.is_subset(&members),
            "{name}: {:?} are required but absent",
            required.difference(&members)
        );
    }

    /// A JSON object with every property of `S`'s schema (the value `fill` gives each).
    fn every_property<S: PartialSchema>(fill: impl Fn(&str) -> serde_json::Value) -> serde_json::Value {
        let schema = serde_json::to_value(S::schema()).unwrap();
        let object = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| (k.clone(), fill(k)))
            .collect::<serde_json::Map<_, _>>();
        serde_json::Value::Object(object)
    }

    /// The request mirrors name only members their types take (the types refuse unknown
    /// ones): a body with every documented member parses.
    #[test]
    fn the_mirrored_request_schemas_name_only_members_their_types_take() {
        use crate::builds::BuildRequestBody;
        use kiln_shared::domain::{FileInput, GeneratorOutput};
        let file = every_property::<FileInputSchema>(|k| match k {
            "encoding" => "utf8".into(),
            "type" => "file".into(),
            "mode" => 420.into(),
            _ => "x".into(),
        });
        serde_json::from_value::<FileInput>(file.clone()).unwrap();
        let output = every_property::<GeneratorOutputSchema>(|k| match k {
            "techStack" => serde_json::json!(["vite"]),
            "metadata" => serde_json::json!({}),
            "templateFiles" | "files" => serde_json::json!([file.clone()]),
            _ => "x".into(),
        });
        serde_json::from_value::<GeneratorOutput>(output.clone()).unwrap();
        let body = every_property::<BuildRequestSchema>(|k| match k {
            "files" => serde_json::json!([file.clone()]),
            "deleted" => serde_json::json!(["a"]),
            "output" => output.clone(),
            "checks" => serde_json::json!({"typecheck": "warn", "lint": "fail"}),
            _ => "x".into(),
        });
        serde_json::from_value::<BuildRequestBody>(body).unwrap();
    }

    #[test]
    fn the_mirrored_schemas_have_their_types_members() {
        let now = Utc::now();
        let id = VersionId::new();
        let user = UserId::parse("u_1").unwrap();
        same_shape::<MetricsSchema>(Metrics::default());
        let mut diagnostic =
            kiln_shared::domain::Diagnostic::kiln(kiln_shared::domain::Step::Build, "x", "m");
        diagnostic.file = Some("src/a.ts".into());
        same_shape::<DiagnosticSchema>(diagnostic);
        same_shape::<BuildEventSchema>(BuildEvent {
            id: 1,
            build_id: id,
            kind: EventType::BuildQueued,
            progress: 0,
            data: serde_json::json!({}),
            timestamp: now,
        });
        same_shape::<UserTokenSchema>(UserToken {
            id: "t".into(),
            user_id: "u_1".into(),
            description: None,
            created_at: now,
            revoked_at: None,
        });
        same_shape::<WebhookSchema>(Webhook {
            id: "wh_1".into(),
            url: "https://example.com".into(),
            event_types: vec![EventType::BuildQueued],
            user_id: Some(user.clone()),
            description: None,
            created_at: now,
        });
        let attempt = Attempt {
            n: 1,
            at: now,
            status_code: Some(200),
            error: None,
            duration_ms: 3,
        };
        same_shape::<AttemptSchema>(attempt.clone());
        same_shape::<DeliverySchema>(Delivery {
            id: "dl_1".into(),
            webhook_id: "wh_1".into(),
            build_id: id.to_string(),
            event_id: 1,
            event_type: "build_queued".into(),
            status: DeliveryStatus::Pending,
            attempts: 1,
            next_attempt_at: None,
            last_status_code: None,
            last_error: None,
            redelivery_of: None,
            created_at: now,
            delivered_at: None,
            payload: serde_json::json!({}),
            attempt_log: vec![attempt],
        });
        same_shape::<UptimeSchema>(Uptime {
            builder_id: "b".into(),
            host: "h".into(),
            version: "v".into(),
            started_at: now,
            last_seen_at: now,
            seconds: 1,
        });
        same_shape::<FileChangeSchema>(FileChange {
            path: "a".into(),
            change: ChangeKind::Added,
            binary: false,
            additions: 1,
            deletions: 0,
            patch: String::new(),
        });
        same_shape::<QueueEstimateSchema>(QueueEstimate {
            queue_position: 1,
            estimated_start_at: Some(now),
            estimated_wait_secs: Some(1.0),
            live_builders: 1,
            slots: 1,
            running: 0,
            median_build_secs: None,
            note: Some("n"),
        });
        let urls = PreviewUrls {
            scheme: "http".into(),
            domain: "localhost".into(),
            port: None,
        };
        let mut queued = Queued::new(&urls, id, user, ProjectId::parse("p").unwrap());
        same_shape::<QueuedSchema>(&queued);
        queued.replaced = Some(Replaced {
            build_id: VersionId::new(),
            status: BuildStatus::Superseded,
        });
        same_shape::<QueuedSchema>(&queued);
        same_shape::<ReplacedSchema>(queued.replaced.unwrap());
    }
}

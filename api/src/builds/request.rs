//! A build request as the client sends it ([`BuildRequestBody`]), parsed into typed values
//! ([`BuildRequest`]), and what the client is told once it is queued ([`Queued`]).

use std::collections::BTreeMap;

use kiln_shared::domain::{
    parse_request_env, BuildSettings, BuildStatus, Checks, EnvName, FileError, FileInput, GeneratorOutput,
    ProjectId, RelativePath, SettingsScope, SourceFile, UserId, VersionId,
};
use kiln_shared::preview::PreviewUrls;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The longest prompt kept, in bytes.
const MAX_PROMPT_BYTES: usize = 100_000;

/// The wire body of `POST /v1/builds` (and of the seed aliases, which use a subset). A field
/// Kiln does not know is refused (a misspelt `baseVersionId` must not quietly build on the
/// latest version), and is never parsed deeper than its name.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildRequestBody {
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    pub prompt: Option<String>,
    pub framework: Option<String>,
    pub base_version_id: Option<String>,
    pub files: Option<Vec<FileInput>>,
    pub deleted: Option<Vec<String>>,
    pub output: Option<GeneratorOutput>,
    pub on_conflict: Option<String>,
    pub checks: Option<serde_json::Value>,
    pub settings: Option<serde_json::Value>,
    pub env: Option<serde_json::Value>,
    pub force: Option<serde_json::Value>,
}

/// What admission does when another build of the project is queued or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnConflict {
    /// 409 naming the other build (the default).
    #[default]
    Reject,
    /// A still-queued build is replaced: it becomes `superseded`, pointing at the new one
    /// ("latest wins"); a running one is still a 409.
    Supersede,
    /// Like `Supersede`, and a running build is cancelled and replaced too.
    CancelRunning,
}

impl OnConflict {
    fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        match raw {
            None | Some("reject") => Ok(Self::Reject),
            Some("supersede") => Ok(Self::Supersede),
            Some("cancel-running") => Ok(Self::CancelRunning),
            Some(other) => Err(unprocessable(format!(
                "onConflict must be reject, supersede or cancel-running, not {other:?}"
            ))),
        }
    }
}

/// A build request, parsed.
#[derive(Debug)]
pub struct BuildRequest {
    pub user: UserId,
    pub project: ProjectId,
    pub prompt: Option<String>,
    pub framework: Option<String>,
    pub base: Option<VersionId>,
    /// `None` when the request carries no files at all.
    pub files: Option<Vec<SourceFile>>,
    pub deleted: Vec<RelativePath>,
    pub metadata: Option<serde_json::Value>,
    pub on_conflict: OnConflict,
    /// The checks to run before the build script (`None`: the project's default checks).
    pub checks: Option<Checks>,
    /// One-off overrides of the project's build settings.
    pub settings: BuildSettings,
    /// One-off plain environment values (on top of the project's).
    pub env: Option<BTreeMap<EnvName, String>>,
    /// Build even when a deployed version of the project is identical.
    pub force: bool,
}

/// What a client is told when its build is queued.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    pub build_id: VersionId,
    pub status: BuildStatus,
    pub user_id: UserId,
    pub project_id: ProjectId,
    pub status_url: String,
    pub preview_url: String,
    pub latest_url: String,
    /// The build of the project this one replaced (`onConflict`), if it replaced one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<Replaced>,
}

/// A build replaced by a newer request of its project.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Replaced {
    pub build_id: VersionId,
    /// `superseded` (it was queued) or `cancelled` (it was running).
    pub status: BuildStatus,
}

impl Queued {
    /// The answer of a build queued now, as `id`.
    pub fn new(urls: &PreviewUrls, id: VersionId, user: UserId, project: ProjectId) -> Self {
        Queued {
            build_id: id,
            status: BuildStatus::Queued,
            status_url: format!("/v1/builds/{id}"),
            preview_url: urls.version_url(id),
            latest_url: urls.latest_url(&user, &project),
            user_id: user,
            project_id: project,
            replaced: None,
        }
    }
}

pub(super) fn unprocessable(e: impl ToString) -> ApiError {
    ApiError::Unprocessable(e.to_string())
}

/// `force`: true or false (absent or null: false), else a 422 naming it.
pub fn parse_force(raw: Option<&serde_json::Value>) -> Result<bool, ApiError> {
    match raw {
        None | Some(serde_json::Value::Null) => Ok(false),
        Some(serde_json::Value::Bool(force)) => Ok(*force),
        Some(other) => Err(unprocessable(format!(
            "force must be true or false, not {}",
            kind_of(other)
        ))),
    }
}

/// What a JSON value is, in a message (never the value itself).
fn kind_of(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A refused file: its path (`invalid_path`), or anything else about it.
fn file_error(e: FileError) -> ApiError {
    match e {
        FileError::Path { .. } | FileError::Duplicate(_) | FileError::FileAndFolder { .. } => {
            ApiError::InvalidPath(e.to_string())
        }
        _ => unprocessable(e),
    }
}

impl BuildRequest {
    pub fn parse(body: BuildRequestBody, limits: kiln_shared::domain::FileLimits) -> Result<Self, ApiError> {
        let user = UserId::parse(body.user_id.as_deref().unwrap_or_default()).map_err(unprocessable)?;
        let project =
            ProjectId::parse(body.project_id.as_deref().unwrap_or_default()).map_err(unprocessable)?;
        let prompt = body.prompt.filter(|p| !p.trim().is_empty());
        if prompt.as_ref().is_some_and(|p| p.len() > MAX_PROMPT_BYTES) {
            return Err(unprocessable(format!(
                "prompt is longer than {MAX_PROMPT_BYTES} bytes"
            )));
        }
        let framework = body.framework.filter(|f| !f.is_empty());
        if let Some(f) = &framework {
            if f.len() > 32
                || !f
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return Err(unprocessable(
                    "framework must be up to 32 characters of a-z, 0-9, '-' or '.'",
                ));
            }
        }
        let on_conflict = OnConflict::parse(body.on_conflict.as_deref())?;
        let force = parse_force(body.force.as_ref())?;
        let checks = match &body.checks {
            None | Some(serde_json::Value::Null) => None,
            Some(value) => Some(Checks::parse(value).map_err(unprocessable)?),
        };
        let settings = match &body.settings {
            None | Some(serde_json::Value::Null) => BuildSettings::default(),
            Some(value) => BuildSettings::default()
                .patched(value, SettingsScope::Build, "settings.")
                .map_err(unprocessable)?,
        };
        let env = match &body.env {
            None | Some(serde_json::Value::Null) => None,
            Some(value) => Some(parse_request_env(value).map_err(unprocessable)?),
        };
        let base = body
            .base_version_id
            .filter(|b| !b.is_empty())
            .map(|b| VersionId::parse_field("baseVersionId", &b))
            .transpose()
            .map_err(unprocessable)?;
        let metadata = body.output.as_ref().map(GeneratorOutput::metadata_json);
        let mut inputs: Vec<FileInput> = body.output.map(|o| o.merged_files()).unwrap_or_default();
        let had_files = body.files.is_some() || !inputs.is_empty();
        if let Some(files) = body.files {
            // `files` replace same-path entries of `output`.
            let given: std::collections::HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
            inputs.retain(|f| !given.contains(f.path.as_str()));
            inputs.extend(files);
        }
        let files = SourceFile::parse_all(&inputs, limits).map_err(file_error)?;
        let deleted = body
            .deleted
            .unwrap_or_default()
            .iter()
            .map(|d| RelativePath::parse(d).map_err(|e| ApiError::InvalidPath(format!("deleted: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            user,
            project,
            prompt,
            framework,
            base,
            files: had_files.then_some(files),
            deleted,
            metadata,
            on_conflict,
            checks,
            settings,
            env,
            force,
        })
    }
}

//! Domain types. Every value that crosses a trust boundary is parsed into one of these.

mod checks;
mod contract;
mod diagnostic;
mod env;
mod files;
mod ids;
mod json;
mod path;
mod settings;
mod status;

pub use checks::{CheckMode, Checks, ChecksError};
pub use contract::GeneratorOutput;
pub use diagnostic::{clipped, Diagnostic, Severity, MAX_DIAGNOSTICS, MAX_MESSAGE_BYTES};
pub use env::{
    changed_names, check_value, parse_request_env, EnvEntry, EnvError, EnvName,
    MAX_NAME_BYTES as MAX_ENV_NAME_BYTES, MAX_VALUE_BYTES as MAX_ENV_VALUE_BYTES, MAX_VARS as MAX_ENV_VARS,
    PUBLIC_PREFIXES,
};
pub use files::{read_tree, FileEncoding, FileError, FileInput, FileLimits, SourceFile};
pub use ids::{IdError, ProjectId, UserId, VersionId};
pub use json::StrictJson;
pub use path::{file_and_folder, PathError, RelativePath, MAX_DEPTH, MAX_SEGMENT_BYTES};
pub use settings::{BuildSettings, PreviewAccess, SettingsError, SettingsScope, MAX_COMMAND_BYTES};
pub use status::{BuildStatus, EventType, Step, UnknownValue};

//! Domain types. Every value that crosses a trust boundary is parsed into one of these.

mod contract;
mod files;
mod ids;
mod path;
mod status;

pub use contract::GeneratorOutput;
pub use files::{read_tree, FileEncoding, FileError, FileInput, FileLimits, SourceFile};
pub use ids::{IdError, ProjectId, UserId, VersionId};
pub use path::{PathError, RelativePath};
pub use status::{BuildStatus, EventType, Step, UnknownValue};

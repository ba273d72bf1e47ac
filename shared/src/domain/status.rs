use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident, $kind:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { kind: $kind, value: s.to_owned() }),
                }
            }
        }
    };
}

string_enum!(
    /// Where a build (= version) is in its life. Mirrors the CHECK constraint in the migrations.
    BuildStatus, "status", {
        Queued => "queued",
        Running => "running",
        Deployed => "deployed",
        Failed => "failed",
    }
);

impl BuildStatus {
    /// A build in this status will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, BuildStatus::Deployed | BuildStatus::Failed)
    }
}

string_enum!(
    /// The station of a build, recorded as `failedStep` when it fails there.
    Step, "step", {
        Queue => "queue",
        Fetch => "fetch",
        Generate => "generate",
        Install => "install",
        Build => "build",
        Output => "output",
        Upload => "upload",
        Record => "record",
    }
);

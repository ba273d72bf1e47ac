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
        Cancelled => "cancelled",
        Superseded => "superseded",
    }
);

impl BuildStatus {
    /// A build in this status will not change any more.
    pub fn is_final(self) -> bool {
        !matches!(self, BuildStatus::Queued | BuildStatus::Running)
    }
}

string_enum!(
    /// The station of a build, recorded as `failedStep` when it fails there.
    Step, "step", {
        Queue => "queue",
        Fetch => "fetch",
        Generate => "generate",
        Install => "install",
        Audit => "audit",
        Check => "check",
        Build => "build",
        Output => "output",
        Upload => "upload",
        Record => "record",
    }
);

string_enum!(
    /// What a build event says. Mirrors the CHECK constraint on `build_events.type`.
    EventType, "event type", {
        BuildQueued => "build_queued",
        BuildStarted => "build_started",
        GenerateStarted => "generate_started",
        GenerateCompleted => "generate_completed",
        InstallStarted => "install_started",
        InstallCompleted => "install_completed",
        InstallSkipped => "install_skipped",
        CheckStarted => "check_started",
        CheckCompleted => "check_completed",
        BuildStepStarted => "build_step_started",
        BuildStepCompleted => "build_step_completed",
        UploadStarted => "upload_started",
        UploadCompleted => "upload_completed",
        DeployCompleted => "deploy_completed",
        BuildFailed => "build_failed",
        BuildSuperseded => "build_superseded",
        BuildCancelled => "build_cancelled",
        BuildRetrying => "build_retrying",
        BuildReused => "build_reused",
    }
);

impl EventType {
    /// How far along a build is when it emits this event (0-100). Install and build dominate
    /// a build's time, so they span most of the range.
    pub fn progress(self) -> i16 {
        match self {
            EventType::BuildQueued => 0,
            EventType::BuildStarted | EventType::BuildRetrying => 5,
            EventType::GenerateStarted => 8,
            EventType::GenerateCompleted => 20,
            EventType::InstallStarted => 22,
            EventType::InstallCompleted | EventType::InstallSkipped => 55,
            EventType::CheckStarted => 55,
            EventType::CheckCompleted => 57,
            EventType::BuildStepStarted => 57,
            EventType::BuildStepCompleted => 85,
            EventType::UploadStarted => 87,
            EventType::UploadCompleted | EventType::BuildReused => 97,
            EventType::DeployCompleted
            | EventType::BuildFailed
            | EventType::BuildSuperseded
            | EventType::BuildCancelled => 100,
        }
    }

    /// The events that end a build: one of them, once, and nothing after it.
    pub const FINAL: [EventType; 4] = [
        EventType::DeployCompleted,
        EventType::BuildFailed,
        EventType::BuildSuperseded,
        EventType::BuildCancelled,
    ];

    /// The last event of a build: nothing follows it.
    pub fn is_final(self) -> bool {
        Self::FINAL.contains(&self)
    }
}

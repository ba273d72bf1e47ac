//! The generator: `KILN_GENERATOR_CMD` (run by `sh -c`) receives
//! `{"prompt", "userId", "projectId", "files"}` on stdin and prints the JSON output contract.

use std::path::Path;

use base64::Engine as _;
use kiln_shared::domain::{FileLimits, GeneratorOutput, SourceFile};
use tokio::time::Instant;

use crate::log::BuildLog;
use crate::process::{self, Invocation, StepEnv};

/// The most a generator may print.
const MAX_OUTPUT_BYTES: usize = 64 * 1024 * 1024;

/// Runs the generator and returns its files and metadata, or a reason.
pub async fn generate(
    command: &str,
    env: &StepEnv,
    cwd: &Path,
    deadline: Instant,
    log: &BuildLog,
    input: serde_json::Value,
    limits: FileLimits,
) -> Result<(Vec<SourceFile>, serde_json::Value), String> {
    let stdin = serde_json::to_vec(&input).expect("generator input always serialises");
    let invocation = Invocation {
        program: "sh",
        args: &["-c", command],
        cwd,
        stdin: Some(stdin),
    };
    let (status, out) = process::run_capturing(env, invocation, deadline, log, MAX_OUTPUT_BYTES)
        .await
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("the generator exited with {status}: {}", log.tail(10)));
    }
    if out.len() > MAX_OUTPUT_BYTES {
        return Err(format!(
            "the generator printed more than {} MB",
            MAX_OUTPUT_BYTES / (1024 * 1024)
        ));
    }
    let output: GeneratorOutput = serde_json::from_slice(&out)
        .map_err(|e| format!("the generator's output is not the JSON output contract: {e}"))?;
    let files = SourceFile::parse_all(&output.merged_files(), limits)
        .map_err(|e| format!("the generator's output is invalid: {e}"))?;
    if files.is_empty() {
        return Err("the generator's output has no files".into());
    }
    Ok((files, output.metadata_json()))
}

/// A file as the generator receives it: UTF-8 text when it is, base64 otherwise.
pub fn file_json(path: &str, content: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(content) {
        Ok(text) => serde_json::json!({ "path": path, "content": text }),
        Err(_) => serde_json::json!({
            "path": path,
            "content": base64::engine::general_purpose::STANDARD.encode(content),
            "encoding": "base64",
        }),
    }
}

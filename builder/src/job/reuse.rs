//! No-op rebuilds: a build whose key ([`super::build_key`]) is a deployed version's of the same
//! project is not run. Its version gets a copy of that version's output manifest under its own
//! key (so deleting the source version takes nothing from it), says so in its log and with a
//! `build_reused` event, and is recorded like any deployed build ([`super::outcome`]). A
//! request with `"force": true` builds anyway (and records its key for later builds).

use kiln_shared::db::versions::{self, Metrics, Version};
use kiln_shared::domain::{EventType, VersionId};
use kiln_shared::store::{Artifacts, ManifestKind};
use serde_json::json;

use super::build_key::{build_key, Parts};
use super::env::BuildEnv;
use super::outcome::{emit, Success};
use crate::context::Builder;
use crate::log::BuildLog;

/// A build's key, from the sources as given; `None` when the build does not qualify (it runs
/// the generator, or is not reproducible).
pub(super) fn key_of(
    b: &Builder,
    version: &Version,
    env: &BuildEnv,
    sources: &kiln_shared::store::Manifest,
) -> Option<String> {
    if version.generate {
        return None;
    }
    let parts = Parts {
        settings: &version.settings,
        checks: &version.checks,
        env: &env.snapshot,
        node: b.toolchain.node.as_deref(),
        pnpm: b.toolchain.pnpm.as_deref(),
        allowed_scripts: &b.settings.sandbox.allow_build_scripts,
    };
    build_key(&parts, sources)
}

/// The output of a deployed version of the project with this key, copied to this version:
/// what the books record instead of a build, and the version it came from. `None` (build it)
/// when there is none, when the request said `force`, or when the copy cannot be made.
pub(super) async fn reuse(
    b: &Builder,
    version: &Version,
    key: &str,
    log: &BuildLog,
    metrics: &mut Metrics,
) -> Option<(Success, VersionId)> {
    if version.force {
        log.line("[kiln] \"force\": true: building even if a deployed version is identical");
        return None;
    }
    let source = match versions::deployed_with_key(&b.db, &version.user_id, &version.project_id, key).await {
        Ok(Some(source)) if source.id != version.id => source,
        Ok(_) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot look for an identical deployed version; building");
            return None;
        }
    };
    let from_key = source.output_manifest_key.as_deref()?;
    let output = match b.artifacts.get_manifest(from_key).await {
        Ok(Some(output)) => output,
        Ok(None) => {
            tracing::warn!(reused_from = %source.id, "the identical version's output manifest is gone; building");
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, reused_from = %source.id, "cannot read the identical version's output; building");
            return None;
        }
    };
    let output_key = Artifacts::manifest_key(version.id, ManifestKind::Output);
    if let Err(e) = b.artifacts.put_manifest(&output_key, &output).await {
        tracing::warn!(error = %e, "cannot store the reused output's manifest; building");
        return None;
    }
    log.line(&format!(
        "[kiln] identical to version {} (sources, settings, environment, toolchain): its output is reused; \"force\": true builds anyway",
        source.id
    ));
    tracing::info!(reused_from = %source.id, "identical to a deployed version: its output is reused");
    metrics.output_bytes = Some(output.total_bytes() as i64);
    metrics.file_count = Some(output.files.len() as i32);
    emit(
        b,
        version,
        EventType::BuildReused,
        json!({ "reusedFrom": source.id, "files": output.files.len(), "bytes": output.total_bytes() }),
    );
    let success = Success {
        sources: None,
        output_manifest_key: output_key,
        framework: source.framework,
        output_dir: source.output_dir,
        diagnostics: Vec::new(),
        diagnostics_total: 0,
        metadata: None,
    };
    Some((success, source.id))
}

//! audit: the installed lockfile against the advisories the builder keeps (see
//! [`crate::audit`]); findings go to the log, and with `KILN_AUDIT=fail` critical ones fail the
//! build, one diagnostic per advisory pointing at the lockfile.

use std::sync::Arc;

use bytes::Bytes;
use kiln_shared::domain::Step;

use crate::diagnostics;
use crate::job::failure::{fail, infra, Failure};
use crate::log::BuildLog;

/// The dependency audit of the installed lockfile (`None`: there is none): findings to the
/// log; with `KILN_AUDIT=fail`, critical ones fail the build at step `audit`.
pub(super) async fn audit(
    auditor: &Arc<crate::audit::Auditor>,
    mode: kiln_shared::config::AuditMode,
    lockfile: Option<Bytes>,
    log: &BuildLog,
) -> Result<(), Failure> {
    use crate::audit::lockfile::MAX_LOCKFILE_BYTES;
    let text = match lockfile {
        None => {
            log.line("[kiln] audit: no pnpm-lock.yaml (no dependencies), nothing to check");
            return Ok(());
        }
        Some(raw) if raw.len() > MAX_LOCKFILE_BYTES => {
            return Err(fail(
                Step::Audit,
                format!(
                    "pnpm-lock.yaml is {} MB, over the audit's {} MB",
                    raw.len() / (1024 * 1024),
                    MAX_LOCKFILE_BYTES / (1024 * 1024)
                ),
            )
            .code("audit_lockfile_too_large"));
        }
        Some(raw) => String::from_utf8_lossy(&raw).into_owned(),
    };
    let auditor = auditor.clone();
    let report = tokio::task::spawn_blocking(move || auditor.audit(&text))
        .await
        .map_err(|e| infra(Step::Audit, e.to_string()))?
        .map_err(|e| infra(Step::Audit, e.to_string()))?;
    for line in &report.lines {
        log.line(line);
    }
    if mode == kiln_shared::config::AuditMode::Fail && !report.critical.is_empty() {
        // One diagnostic per advisory, pointing at the lockfile that pins the package.
        let diagnostics: Vec<_> = report
            .critical
            .iter()
            .map(|advisory| {
                let mut d = kiln_shared::domain::Diagnostic::kiln(Step::Audit, "audit_critical", advisory);
                d.file = Some(crate::job::files::LOCKFILE.to_owned());
                d
            })
            .collect();
        let total = diagnostics.len();
        return Err(fail(
            Step::Audit,
            format!(
                "dependency audit: {} critical {}: {}",
                report.critical.len(),
                if report.critical.len() == 1 {
                    "advisory"
                } else {
                    "advisories"
                },
                report.critical.join(" | ")
            ),
        )
        .code("audit_critical")
        .with(diagnostics::Parsed {
            diagnostics: diagnostics
                .into_iter()
                .take(kiln_shared::domain::MAX_DIAGNOSTICS)
                .collect(),
            total,
        }));
    }
    Ok(())
}

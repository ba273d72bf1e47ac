//! check: the checks a build asked for (typecheck, lint; see [`crate::checks`]), after the
//! install and before the build script, in the sandbox as the build, within its limits. Both
//! run, so one build reports every problem at once; then a check in `fail` mode that found
//! errors fails the build at step `check`, and what `warn` checks found goes with the deployed
//! version.

use std::time::Instant as StdInstant;

use kiln_shared::db::versions::Metrics;
use kiln_shared::domain::{CheckMode, Diagnostic, EventType, Step, MAX_DIAGNOSTICS};
use serde_json::json;

use super::{ms_since, Stations};
use crate::checks::{self, Plan};
use crate::diagnostics::{self, Parsed};
use crate::job::failure::{beneath_failure, fail, Failure};

impl Stations<'_> {
    /// Runs the build's checks; `Ok` with what they found (to keep with the deployed version)
    /// unless one in `fail` mode failed.
    pub(super) async fn check(&self, metrics: &mut Metrics) -> Result<Parsed, Failure> {
        let wanted = self.version.checks;
        if !wanted.any() {
            return Ok(Parsed::default());
        }
        let started = StdInstant::now();
        self.emit(
            EventType::CheckStarted,
            json!({ "typecheck": wanted.typecheck.as_str(), "lint": wanted.lint.as_str() }),
        );
        let project = self
            .open_app()
            .map_err(|e| beneath_failure(Step::Check, e.to_string(), &e))?;
        let mut found = Parsed::default();
        let mut outcomes = serde_json::Map::new();
        let mut failed = Vec::new();
        for (name, mode, plan) in [
            ("typecheck", wanted.typecheck, checks::typecheck(&project)),
            ("lint", wanted.lint, checks::lint(&project)),
        ] {
            if mode == CheckMode::Off {
                outcomes.insert(name.into(), "off".into());
                continue;
            }
            let outcome = match plan {
                Plan::Skip(d) => {
                    self.log.line(&format!("[kiln] {name}: skipped: {}", d.message));
                    found.diagnostics.push(d);
                    found.total += 1;
                    "skipped"
                }
                Plan::Run { args } => {
                    self.log.line(&format!("[kiln] {name} ({})", mode.as_str()));
                    let mut argv = vec!["exec"];
                    argv.extend(args.iter().map(String::as_str));
                    match self.run_step(Step::Check, self.build_env(), "pnpm", &argv).await {
                        Ok(()) => "passed",
                        // The check's verdict; a limit passed or the deadline ends the build.
                        Err(f) if f.code == "command_failed" => {
                            found.total += f.diagnostics_total.max(1);
                            if f.diagnostics.is_empty() {
                                found.diagnostics.push(Diagnostic::kiln(
                                    Step::Check,
                                    "check_failed",
                                    &f.message,
                                ));
                            }
                            found.diagnostics.extend(f.diagnostics);
                            if mode == CheckMode::Fail {
                                failed.push(name);
                            }
                            "failed"
                        }
                        Err(f) => return Err(f),
                    }
                }
            };
            outcomes.insert(name.into(), outcome.into());
        }
        found.diagnostics.truncate(MAX_DIAGNOSTICS);
        metrics.check_ms = ms_since(started);
        let mut data = json!({ "ms": metrics.check_ms, "diagnostics": found.total });
        data.as_object_mut().expect("an object").extend(outcomes);
        self.emit(EventType::CheckCompleted, data);
        if failed.is_empty() {
            return Ok(found);
        }
        let summary = diagnostics::summary(&found.diagnostics, "");
        Err(fail(
            Step::Check,
            format!("{} failed:\n{summary}", failed.join(" and ")),
        )
        .code("check_failed")
        .with(diagnostics::Parsed {
            diagnostics: found.diagnostics,
            total: found.total,
        }))
    }
}

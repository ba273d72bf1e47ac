//! Unknown names: a `KILN_*` variable in the environment, or a key of the `KILN_CONFIG` file,
//! that no binary reads (a typo, or a setting that was renamed) is a warning at start-up
//! naming the closest known one.

use super::variables::{secret_variables, variables};

/// `KILN_*` variables that are not settings of the binaries: the `kiln` CLI's, and those of
/// the repository's scripts and test harnesses (`ops/*.sh`, `testkit/`, the benchmarks, the
/// chaos and fuzz suites). Whole names, or prefixes ending in `_` or naming a family.
const TOOLING: &[&str] = &[
    // The `kiln` CLI.
    "KILN_URL",
    "KILN_TOKEN",
    "KILN_PROFILE",
    // ops/test.sh, testkit and the suites it runs; `KILN_BLESS=1` rewrites generated files.
    "KILN_BLESS",
    "KILN_TEST_",
    "KILN_TESTKIT_",
    "KILN_DEPLOY_CHECK",
    "KILN_CHAOS",
    "KILN_FUZZ",
    "KILN_BENCH_",
    "KILN_GARAGE_",
    // ops/up.sh and ops/lib.sh.
    "KILN_DEV_",
    "KILN_DIR",
    "KILN_OPS_DIR",
    "KILN_TOOLS",
    "KILN_NO_BUILD",
    "KILN_PNPM_SPEC",
    // ops/lib.sh's OpenAPI tools (the validator and the TypeScript client generator).
    "KILN_OPENAPI_",
    // ops/package.sh, ops/deploy-check.sh and deploy/docker/Dockerfile (a build argument).
    "KILN_CARGO_DEB_VERSION",
    "KILN_DEB_PROFILE",
    "KILN_HADOLINT_VERSION",
    "KILN_UID",
];

/// A name no binary reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    /// As it was found (`KILN_BUILD_TIMOUT_SECS`, or the file key `build_timout_secs`).
    pub name: String,
    /// The closest known name, in the same form, when one is close enough to be meant.
    pub closest: Option<String>,
    /// A file key naming a variable read from the environment only: that variable.
    pub env_only: Option<&'static str>,
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.closest, self.env_only) {
            (_, Some(variable)) => write!(
                f,
                "{}: {variable} is read from the environment only, not from the file",
                self.name
            ),
            (Some(known), None) => write!(f, "{}; did you mean {known}?", self.name),
            (None, None) => write!(f, "{}", self.name),
        }
    }
}

fn is_tooling(name: &str) -> bool {
    TOOLING.iter().any(|t| {
        name == *t || (name.starts_with(t) && (t.ends_with('_') || name[t.len()..].starts_with('_')))
    })
}

/// The `KILN_*` names among `names` that are neither a defined variable, a secret's
/// `<NAME>_FILE`, nor a tooling variable, sorted.
pub fn unknown_variables<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<Unknown> {
    let known: Vec<String> = variables()
        .map(|v| v.name.to_owned())
        .chain(secret_variables().map(|s| format!("{s}_FILE")))
        .collect();
    let mut found: Vec<Unknown> = names
        .into_iter()
        .filter(|n| n.starts_with("KILN_") && !is_tooling(n) && !known.iter().any(|k| k == n))
        .map(|n| Unknown {
            name: n.to_owned(),
            closest: closest(n, known.iter().map(String::as_str)).map(str::to_owned),
            env_only: None,
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// The keys of a `KILN_CONFIG` file that name no variable, or one read from the environment
/// only, sorted.
pub fn unknown_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<Unknown> {
    let known: Vec<String> = variables()
        .filter(|v| !v.env_only)
        .map(|v| v.toml_key())
        .collect();
    let mut found: Vec<Unknown> = keys
        .into_iter()
        .filter(|k| !known.iter().any(|n| n == k))
        .map(|k| Unknown {
            name: k.to_owned(),
            closest: closest(k, known.iter().map(String::as_str)).map(str::to_owned),
            env_only: variables()
                .find(|v| v.env_only && v.toml_key() == k)
                .map(|v| v.name),
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// The known name most like `name`, if it is alike enough (compared without the common
/// `KILN_` prefix, which would make every name look alike).
fn closest<'k>(name: &str, known: impl Iterator<Item = &'k str>) -> Option<&'k str> {
    let bare = |n: &'k str| n.strip_prefix("KILN_").unwrap_or(n);
    let name = name.strip_prefix("KILN_").unwrap_or(name);
    known
        .map(|k| (strsim::normalized_damerau_levenshtein(name, bare(k)), k))
        .filter(|(score, _)| *score >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// Logs each unknown name as a warning: `unknown variable KILN_X; did you mean KILN_Y?`
/// (`what` is `variable`, or `KILN_CONFIG key` for the file's).
pub(super) fn warn(what: &str, unknown: Vec<Unknown>) {
    for u in unknown {
        tracing::warn!("unknown {what} {u}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_variable_is_named_with_the_closest_known_one() {
        let found = unknown_variables([
            "KILN_BUILD_TIMOUT_SECS",
            "KILN_BUILD_TIMEOUT_SECS",
            "KILN_DATABASE_URL_FILE",
            "KILN_HMAC_SECRET_FILE",
            "KILN_MAX_OUTPUT_MB_FILE",
            "KILN_PREVEIW_DOMAIN",
            "KILN_TEST_DATABASE_URL",
            "KILN_CHAOS",
            "KILN_CHAOS_PG_PORT",
            "KILN_CHAOSMONKEY",
            "KILN_URL",
            "KILN_ZZZZZZZZ",
            "PATH",
            "AWS_REGION",
        ]);
        let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "KILN_BUILD_TIMOUT_SECS; did you mean KILN_BUILD_TIMEOUT_SECS?",
                "KILN_CHAOSMONKEY",
                // Only a secret may be given as a file.
                "KILN_MAX_OUTPUT_MB_FILE; did you mean KILN_MAX_OUTPUT_FILES?",
                "KILN_PREVEIW_DOMAIN; did you mean KILN_PREVIEW_DOMAIN?",
                "KILN_ZZZZZZZZ",
            ]
        );
        assert_eq!(
            unknown_variables(["KILN_RATELIMIT_PER_IP"])[0].closest.as_deref(),
            Some("KILN_RATE_LIMIT_PER_IP")
        );
    }

    #[test]
    fn an_unknown_file_key_is_named_with_the_closest_known_one() {
        let found = unknown_keys(["build_timeout_secs", "max_ouptut_mb", "api_tokens"]);
        assert_eq!(
            found,
            [Unknown {
                name: "max_ouptut_mb".into(),
                closest: Some("max_output_mb".into()),
                env_only: None,
            }]
        );
    }

    #[test]
    fn a_file_key_read_from_the_environment_only_is_named_as_such() {
        let shown: Vec<String> = unknown_keys(["log_format", "rust_log", "config", "data_dir"])
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "config: KILN_CONFIG is read from the environment only, not from the file",
                "log_format: KILN_LOG_FORMAT is read from the environment only, not from the file",
                "rust_log: RUST_LOG is read from the environment only, not from the file",
            ]
        );
    }
}

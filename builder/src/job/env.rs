//! The project's environment for this build, read before anything runs: its values (secrets
//! decrypted with the builder's keyring), with the request's one-off plain values on top;
//! their snapshot (names, secret or not, keyed hashes) recorded on the version, where the
//! build's key ([`super::reuse`]) reads it; and the secret values handed to the log's redactor
//! before any step can print them. The values reach the build and checks steps only (never the
//! install, the generator or the farm's own processes).

use kiln_shared::db::projects::env::{self as project_env, StoredValue};
use kiln_shared::db::versions::Version;
use kiln_shared::domain::{EnvEntry, Step};
use kiln_shared::secrets::{context, value_hash};

use super::failure::{infra, Failure};
use crate::context::Builder;
use crate::log::BuildLog;

/// What a build runs with.
pub(super) struct BuildEnv {
    /// The values the build and checks steps get, by name, in name order.
    pub(super) values: Vec<(String, String)>,
    /// What the version records of them (a hash is empty when the project had no key).
    pub(super) snapshot: Vec<EnvEntry>,
}

/// Reads the build's environment and records its snapshot on the version.
pub(super) async fn read(b: &Builder, v: &Version, log: &BuildLog) -> Result<BuildEnv, Failure> {
    let read = project_env::for_build(&b.db, &v.user_id, &v.project_id)
        .await
        .map_err(|e| infra(Step::Fetch, format!("reading the project's environment: {e}")))?;
    let (stored, key) = read.unwrap_or_default();
    let mut values: Vec<(String, String, bool)> = Vec::with_capacity(stored.len());
    for var in stored {
        let value = match &var.value {
            StoredValue::Plain(value) => (value.clone(), false),
            StoredValue::Secret(sealed) => {
                let keyring = b.keyring.as_ref().ok_or_else(|| {
                    infra(
                        Step::Fetch,
                        format!(
                            "project {}/{} has secret values and this builder has no key to decrypt them (KILN_SECRETS_KEY or KILN_SECRETS_KEYS)",
                            v.user_id, v.project_id
                        ),
                    )
                })?;
                let opened = keyring
                    .open(
                        &context(v.user_id.as_str(), v.project_id.as_str(), &var.name),
                        sealed,
                    )
                    .map_err(|e| infra(Step::Fetch, format!("secret {}: {e}", var.name)))?;
                (opened, true)
            }
        };
        values.push((var.name, value.0, value.1));
    }
    // The request's one-off values win over the project's of the same name.
    for (name, value) in v.request_env.iter().flatten() {
        values.retain(|(n, _, _)| n != name);
        values.push((name.clone(), value.clone(), false));
    }
    values.sort_by(|a, b| a.0.cmp(&b.0));
    let secrets: Vec<String> = values
        .iter()
        .filter(|(_, _, s)| *s)
        .map(|(_, v, _)| v.clone())
        .collect();
    if !secrets.is_empty() {
        log.redact_project_secrets(secrets);
    }
    let snapshot: Vec<EnvEntry> = values
        .iter()
        .map(|(name, value, secret)| EnvEntry {
            name: name.clone(),
            secret: *secret,
            // Without a project row (deleted meanwhile) there is no key: no hash.
            hash: if key.is_empty() {
                String::new()
            } else {
                value_hash(&key, name, value)
            },
        })
        .collect();
    if !values.is_empty() {
        project_env::record_snapshot(&b.db, v.id, &snapshot)
            .await
            .map_err(|e| infra(Step::Fetch, format!("recording the build's environment: {e}")))?;
        let names: Vec<String> = values
            .iter()
            .map(|(n, _, s)| if *s { format!("{n} (secret)") } else { n.clone() })
            .collect();
        log.line(&format!(
            "[kiln] environment of the build and checks steps: {}",
            names.join(", ")
        ));
    }
    Ok(BuildEnv {
        values: values.into_iter().map(|(n, v, _)| (n, v)).collect(),
        snapshot,
    })
}

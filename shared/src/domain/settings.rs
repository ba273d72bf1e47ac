//! A project's build settings: the commands that install and build it, the folders its app and
//! its output are in, the checks its builds run by default, and who may see its previews. Each
//! is validated here, once, for `PATCH` of a project and for a build request's one-off
//! overrides.

use serde::{Deserialize, Serialize};

use super::{Checks, RelativePath};

/// The longest command, in bytes.
pub const MAX_COMMAND_BYTES: usize = 1024;

/// Who may open a project's previews.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreviewAccess {
    /// Anyone with the URL.
    #[default]
    Public,
    /// Only a request carrying a valid share link (or its cookie).
    Private,
}

/// A project's build settings (every member optional: absent is Kiln's default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildSettings {
    /// Run after the dependencies are installed, in the install step, as the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_command: Option<String>,
    /// Run instead of `pnpm run build`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_command: Option<String>,
    /// The folder to publish, relative to `rootDir` (instead of the detected one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_dir: Option<String>,
    /// The folder holding the app's package.json, relative to the top of the tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_dir: Option<String>,
    /// The checks builds run unless their request says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<Checks>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_access: Option<PreviewAccess>,
    /// Whether search engines may index the previews (they are told `noindex` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indexable: Option<bool>,
}

/// Why settings were refused: the message names the member and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(String);

/// Where settings come from: a project's (`PATCH`) or a build request's one-off overrides
/// (which may not change who sees the previews).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingsScope {
    Project,
    Build,
}

impl BuildSettings {
    /// Who may open the previews (public unless set).
    pub fn access(&self) -> PreviewAccess {
        self.preview_access.unwrap_or_default()
    }

    /// These settings with `changes` applied: each member of the object replaces the setting,
    /// `null` resets it to Kiln's default; an unknown member or a bad value is refused, naming
    /// it (`prefix` is how members are named in messages: `settings.` in a build request).
    pub fn patched(
        &self,
        changes: &serde_json::Value,
        scope: SettingsScope,
        prefix: &str,
    ) -> Result<Self, SettingsError> {
        let object = changes.as_object().ok_or_else(|| {
            SettingsError(format!(
                "{} must be an object such as {{\"buildCommand\": \"pnpm run build:prod\"}}",
                prefix.trim_end_matches('.').if_empty("settings")
            ))
        })?;
        let mut out = self.clone();
        for (name, value) in object {
            let field = format!("{prefix}{name}");
            let null = value.is_null();
            match name.as_str() {
                "installCommand" => out.install_command = (!null).then(|| command(&field, value)).transpose()?,
                "buildCommand" => out.build_command = (!null).then(|| command(&field, value)).transpose()?,
                "outputDir" => out.output_dir = (!null).then(|| folder(&field, value)).transpose()?,
                "rootDir" => out.root_dir = (!null).then(|| folder(&field, value)).transpose()?,
                "checks" => {
                    out.checks = (!null)
                        .then(|| Checks::parse(value).map_err(|e| SettingsError(format!("{prefix}{e}"))))
                        .transpose()?
                }
                "previewAccess" | "indexable" if scope == SettingsScope::Build => {
                    return Err(SettingsError(format!(
                        "{field} is a setting of the project, not of one build: change it with PATCH /v1/projects/{{userId}}/{{projectId}}"
                    )))
                }
                "previewAccess" => {
                    out.preview_access = match value.as_str() {
                        _ if null => None,
                        Some("public") => Some(PreviewAccess::Public),
                        Some("private") => Some(PreviewAccess::Private),
                        _ => {
                            return Err(SettingsError(format!(
                                "{field} must be \"public\" or \"private\", not {value}"
                            )))
                        }
                    }
                }
                "indexable" => {
                    out.indexable = match value {
                        _ if null => None,
                        serde_json::Value::Bool(b) => Some(*b),
                        _ => return Err(SettingsError(format!("{field} must be true or false, not {value}"))),
                    }
                }
                other => {
                    return Err(SettingsError(format!(
                        "{prefix}{other} is not a setting; the settings are installCommand, buildCommand, outputDir, rootDir, checks{}",
                        if scope == SettingsScope::Project { ", previewAccess and indexable" } else { "" }
                    )))
                }
            }
        }
        Ok(out)
    }

    /// The settings a build runs with: these, with the request's overrides on top.
    pub fn with_overrides(&self, overrides: &BuildSettings) -> BuildSettings {
        BuildSettings {
            install_command: overrides
                .install_command
                .clone()
                .or_else(|| self.install_command.clone()),
            build_command: overrides
                .build_command
                .clone()
                .or_else(|| self.build_command.clone()),
            output_dir: overrides.output_dir.clone().or_else(|| self.output_dir.clone()),
            root_dir: overrides.root_dir.clone().or_else(|| self.root_dir.clone()),
            checks: overrides.checks.or(self.checks),
            preview_access: self.preview_access,
            indexable: self.indexable,
        }
    }

    /// Whether no member is set.
    pub fn is_default(&self) -> bool {
        self == &BuildSettings::default()
    }
}

trait IfEmpty {
    fn if_empty<'a>(&'a self, other: &'a str) -> &'a str;
}

impl IfEmpty for str {
    fn if_empty<'a>(&'a self, other: &'a str) -> &'a str {
        if self.is_empty() {
            other
        } else {
            self
        }
    }
}

/// A command: one line of at most [`MAX_COMMAND_BYTES`], run by `sh -c` in the sandbox.
fn command(field: &str, value: &serde_json::Value) -> Result<String, SettingsError> {
    let raw = value
        .as_str()
        .ok_or_else(|| SettingsError(format!("{field} must be a string (a shell command), not {value}")))?;
    if raw.trim().is_empty() {
        return Err(SettingsError(format!(
            "{field} is empty; send null to use Kiln's default"
        )));
    }
    if raw.len() > MAX_COMMAND_BYTES {
        return Err(SettingsError(format!(
            "{field} is {} bytes; a command is at most {MAX_COMMAND_BYTES} bytes",
            raw.len()
        )));
    }
    if raw.contains(['\n', '\r', '\0']) {
        return Err(SettingsError(format!(
            "{field} must be one line (no line breaks or NUL); join commands with &&"
        )));
    }
    Ok(raw.trim().to_owned())
}

/// A folder: a relative path under the rules of source paths.
fn folder(field: &str, value: &serde_json::Value) -> Result<String, SettingsError> {
    let raw = value.as_str().ok_or_else(|| {
        SettingsError(format!(
            "{field} must be a string (a relative folder), not {value}"
        ))
    })?;
    let raw = raw.trim_end_matches('/');
    RelativePath::parse(raw)
        .map(|p| p.as_str().to_owned())
        .map_err(|e| SettingsError(format!("{field}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_patch_sets_resets_and_names_what_is_wrong() {
        let s = BuildSettings::default()
            .patched(
                &json!({"buildCommand": "pnpm run build:prod", "outputDir": "public/", "rootDir": "apps/web",
                        "checks": {"typecheck": "fail"}, "previewAccess": "private", "indexable": true}),
                SettingsScope::Project,
                "",
            )
            .unwrap();
        assert_eq!(s.build_command.as_deref(), Some("pnpm run build:prod"));
        assert_eq!(s.output_dir.as_deref(), Some("public"));
        assert_eq!(s.root_dir.as_deref(), Some("apps/web"));
        assert_eq!(s.access(), PreviewAccess::Private);
        let reset = s
            .patched(
                &json!({"buildCommand": null, "previewAccess": null}),
                SettingsScope::Project,
                "",
            )
            .unwrap();
        assert_eq!(reset.build_command, None);
        assert_eq!(reset.access(), PreviewAccess::Public);
        assert_eq!(reset.root_dir.as_deref(), Some("apps/web"));

        for (patch, says) in [
            (json!({"buildCommand": "a\nb"}), "buildCommand must be one line"),
            (json!({"buildCommand": "x".repeat(1025)}), "at most 1024 bytes"),
            (json!({"buildCommand": 3}), "buildCommand must be a string"),
            (json!({"outputDir": "../up"}), "outputDir: "),
            (json!({"rootDir": "/abs"}), "rootDir: "),
            (
                json!({"previewAccess": "secret"}),
                "previewAccess must be \"public\" or \"private\"",
            ),
            (json!({"colour": "red"}), "colour is not a setting"),
            (json!({"checks": {"lint": "loud"}}), "checks.lint must be"),
            (json!([]), "must be an object"),
        ] {
            let e = BuildSettings::default()
                .patched(&patch, SettingsScope::Project, "")
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{patch}: {e}");
        }
        let e = BuildSettings::default()
            .patched(
                &json!({"previewAccess": "private"}),
                SettingsScope::Build,
                "settings.",
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("settings.previewAccess is a setting of the project"),
            "{e}"
        );
    }

    #[test]
    fn overrides_win_and_access_stays_the_projects() {
        let project = BuildSettings {
            build_command: Some("make".into()),
            output_dir: Some("out".into()),
            preview_access: Some(PreviewAccess::Private),
            ..Default::default()
        };
        let build = BuildSettings {
            output_dir: Some("dist".into()),
            ..Default::default()
        };
        let s = project.with_overrides(&build);
        assert_eq!(s.build_command.as_deref(), Some("make"));
        assert_eq!(s.output_dir.as_deref(), Some("dist"));
        assert_eq!(s.access(), PreviewAccess::Private);
    }
}

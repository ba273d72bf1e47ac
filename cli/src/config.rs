//! Where `kiln` finds its API and credentials: the configuration file `kiln login` writes
//! (`$XDG_CONFIG_HOME/kiln/config.toml`, mode 600, named profiles), overridden by `--url`/
//! `KILN_URL` and `--token`/`KILN_TOKEN`; the back end's HMAC secret comes from the
//! environment only (`KILN_HMAC_SECRET`, or the file `KILN_HMAC_SECRET_FILE` names).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// The API's URL when neither the command line, the environment nor a profile names one.
pub(crate) const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// The profile `kiln login` writes when none is named.
pub(crate) const DEFAULT_PROFILE: &str = "default";

/// The configuration file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    /// The profile used when `--profile` names none: the one last logged in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) current: Option<String>,
    #[serde(default)]
    pub(crate) profiles: BTreeMap<String, Profile>,
}

/// One API and the token used on it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Profile {
    pub(crate) url: String,
    pub(crate) token: String,
}

/// `$XDG_CONFIG_HOME/kiln/config.toml`, else `~/.config/kiln/config.toml`; none without either.
pub(crate) fn path() -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let dir = absolute("XDG_CONFIG_HOME").or_else(|| absolute("HOME").map(|h| h.join(".config")))?;
    Some(dir.join("kiln").join("config.toml"))
}

impl ConfigFile {
    /// The file at `path`; empty when there is none.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).with_context(|| format!("reading {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the file readable by its owner only (it holds tokens): a new file with mode 600
    /// in place of the old one, in a folder with mode 700.
    pub(crate) fn save(&self, path: &Path) -> anyhow::Result<()> {
        let dir = path.parent().context("the configuration file has no folder")?;
        if !dir.exists() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let text = toml::to_string_pretty(self)?;
        let temporary = path.with_extension("toml.new");
        let _ = std::fs::remove_file(&temporary);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .with_context(|| format!("creating {}", temporary.display()))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub(crate) enum Credentials {
    /// A bearer token (an operator's or a user's).
    Token(String),
    /// The product back end's HMAC secret: each request is signed.
    Secret(String),
    None,
}

/// The API and credentials a command uses, and where they came from.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) url: String,
    pub(crate) credentials: Credentials,
    /// The profile whose URL or token is in use.
    pub(crate) profile: Option<String>,
}

/// The back end's secret from the environment: `KILN_HMAC_SECRET`, or the file
/// `KILN_HMAC_SECRET_FILE` names (as the API reads it; one trailing newline dropped).
fn secret_from_env() -> anyhow::Result<Option<String>> {
    if let Some(secret) = std::env::var("KILN_HMAC_SECRET").ok().filter(|s| !s.is_empty()) {
        return Ok(Some(secret));
    }
    let Some(file) = std::env::var_os("KILN_HMAC_SECRET_FILE") else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("reading KILN_HMAC_SECRET_FILE {}", Path::new(&file).display()))?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Ok(Some(text.strip_suffix('\r').unwrap_or(text).to_owned()))
}

/// The URL and credentials: the command line and the environment first, then the profile.
/// A profile's token is sent only to its own URL.
pub(crate) fn resolve(
    url: Option<String>,
    token: Option<String>,
    profile: Option<&str>,
) -> anyhow::Result<Resolved> {
    let file = match path() {
        Some(p) => ConfigFile::load(&p)?,
        None => ConfigFile::default(),
    };
    // The profile named, else the one last logged in, else `default` when there is one.
    let name = profile.map(str::to_owned).or(file.current.clone()).or_else(|| {
        file.profiles
            .contains_key(DEFAULT_PROFILE)
            .then(|| DEFAULT_PROFILE.to_owned())
    });
    let chosen = match &name {
        Some(n) => match file.profiles.get(n) {
            Some(p) => Some(p),
            None if profile.is_some() => {
                bail!("no profile {n:?}: `kiln login --profile {n}` makes it")
            }
            None => None,
        },
        None => None,
    };
    let url = url
        .or_else(|| chosen.map(|p| p.url.clone()))
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let from_profile = chosen.filter(|p| same_url(&p.url, &url));
    let credentials = if let Some(token) = token.filter(|t| !t.is_empty()) {
        Credentials::Token(token)
    } else if let Some(secret) = secret_from_env()? {
        Credentials::Secret(secret)
    } else if let Some(p) = from_profile {
        Credentials::Token(p.token.clone())
    } else {
        Credentials::None
    };
    Ok(Resolved {
        url,
        credentials,
        profile: from_profile.and(name),
    })
}

/// Two spellings of one API URL (a trailing slash aside).
pub(crate) fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_written_for_its_owner_only_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kiln").join("config.toml");
        let mut file = ConfigFile::load(&path).unwrap();
        assert!(file.profiles.is_empty());
        file.current = Some("work".into());
        file.profiles.insert(
            "work".into(),
            Profile {
                url: "https://kiln.example".into(),
                token: "kiln_ut_x".into(),
            },
        );
        file.save(&path).unwrap();
        file.save(&path).unwrap(); // again, over the first
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let folder = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(folder, 0o700);
        let back = ConfigFile::load(&path).unwrap();
        assert_eq!(back.current.as_deref(), Some("work"));
        assert_eq!(back.profiles["work"].token, "kiln_ut_x");
        assert!(same_url("http://a/", "http://a") && !same_url("http://a", "http://b"));
    }
}

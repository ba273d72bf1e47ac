//! `kiln link <user>/<project>`: the project a folder builds as, kept in `.kiln/project.toml`
//! in that folder (never uploaded), so `kiln submit` there needs no `--user`/`--project`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// The folder of the link file inside a project (left out of what `submit` uploads).
pub(crate) const DIR: &str = ".kiln";

/// A folder's project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Link {
    pub(crate) user: String,
    pub(crate) project: String,
}

impl Link {
    /// `<user>/<project>`.
    pub(crate) fn parse(raw: &str) -> anyhow::Result<Self> {
        match raw.split_once('/') {
            Some((u, p)) if !u.is_empty() && !p.is_empty() && !p.contains('/') => Ok(Link {
                user: u.to_owned(),
                project: p.to_owned(),
            }),
            _ => bail!("expected <user>/<project>, got {raw:?}"),
        }
    }

    fn file(dir: &Path) -> PathBuf {
        dir.join(DIR).join("project.toml")
    }

    /// The link of `dir`, if it has one.
    pub(crate) fn read(dir: &Path) -> anyhow::Result<Option<Self>> {
        let file = Self::file(dir);
        match std::fs::read_to_string(&file) {
            Ok(text) => toml::from_str(&text)
                .map(Some)
                .with_context(|| format!("reading {}", file.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
        }
    }

    /// Writes the link into `dir`; the file's path.
    pub(crate) fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        if !dir.is_dir() {
            bail!("{} is not a folder", dir.display());
        }
        let file = Self::file(dir);
        std::fs::create_dir_all(dir.join(DIR))?;
        let text = format!(
            "# Written by `kiln link`: the project `kiln submit` builds this folder as.\n{}",
            toml::to_string(self)?
        );
        std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_written_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Link::read(dir.path()).unwrap(), None);
        let link = Link::parse("ada/site").unwrap();
        link.write(dir.path()).unwrap();
        assert_eq!(Link::read(dir.path()).unwrap(), Some(link));
        assert!(Link::parse("no-slash").is_err() && Link::parse("a/b/c").is_err());
    }
}

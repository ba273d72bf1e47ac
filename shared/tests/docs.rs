//! The book (`docs/`) against the code and against itself: the configuration reference's
//! tables and `deploy/kiln.env.example` are what the definitions of the variables generate
//! (`KILN_BLESS=1` rewrites them), every `KILN_*` name the code mentions is defined, every
//! relative link in the repository's markdown points at a file (and heading) that exists,
//! and every module the architecture page's crate map names is there.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kiln_shared::config;

const CONFIG_PAGE: &str = "docs/reference/configuration.md";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every file under `dir` whose name ends with `ext`, skipping build output, dependencies and
/// hidden folders.
fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" && name != "node_modules" {
                files(&path, ext, out);
            }
        } else if name.ends_with(ext) {
            out.push(path);
        }
    }
}

/// The `KILN_*` names kiln-shared's non-test source writes as string literals (the
/// definitions, and a variable read outside the settings such as the logger's).
fn variables_in_code() -> BTreeSet<String> {
    let mut sources = Vec::new();
    files(&root().join("shared/src"), ".rs", &mut sources);
    let mut vars = BTreeSet::new();
    for file in sources {
        let text = std::fs::read_to_string(&file).unwrap();
        // A file's unit tests come last, after `#[cfg(test)]`: their literals are not settings.
        let code = text.split("\n#[cfg(test)]\nmod ").next().unwrap();
        for (at, _) in code.match_indices("\"KILN_") {
            let literal = &code[at + 1..];
            let end = literal.find('"').unwrap();
            let name = &literal[..end];
            let plain = name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            // `"KILN_"` alone is the prefix (the TOML file's keys drop it), not a variable.
            if plain && name.len() > "KILN_".len() {
                vars.insert(name.to_owned());
            }
        }
    }
    vars
}

/// Every `KILN_*` name kiln-shared's code mentions is defined, or is one of the tooling
/// variables `config::unknown` lists as known (the CLI's and the scripts'). The other way,
/// that every defined variable is read, is a unit test of `config::load`: loading reads each
/// through its definition.
#[test]
fn every_variable_the_code_names_is_defined() {
    let code = variables_in_code();
    assert!(
        code.len() >= 50,
        "only {} variables found in shared/src",
        code.len()
    );
    let undefined: Vec<_> = code
        .iter()
        .filter(|name| config::find(name).is_none())
        .filter(|name| !config::unknown_variables([name.as_str()]).is_empty())
        .collect();
    assert!(
        undefined.is_empty(),
        "named in shared/src but not defined in kiln_shared::config (add them to their section's `section!`): {undefined:?}"
    );
}

/// The `KILN_*` names in `text`: an ASCII upper-case word starting with `KILN_` (a prefix
/// such as `KILN_TEST_`, ending in `_`, included).
fn kiln_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("KILN_") {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let len = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.push(tail[..len].to_owned());
        }
        rest = &tail[len..];
    }
    names
}

/// The variables the repository's scripts, harnesses, deployment files and CLI set or read
/// are known: none of them would be warned about as unknown at a binary's start-up.
#[test]
fn every_variable_the_scripts_and_the_cli_use_is_known() {
    let mut paths = Vec::new();
    for dir in ["ops", "testkit", "deploy", ".ci", "cli/src"] {
        files(&root().join(dir), "", &mut paths);
    }
    // A `tests/` folder's files may misspell a name on purpose (the binaries' tests do).
    paths.retain(|p| !p.components().any(|c| c.as_os_str() == "tests"));
    let mut names = BTreeSet::new();
    for path in &paths {
        if let Ok(text) = std::fs::read_to_string(path) {
            names.extend(kiln_names(&text).into_iter().filter(|n| n.len() > "KILN_".len()));
        }
    }
    assert!(names.len() >= 60, "only {} names found", names.len());
    let unknown: Vec<String> = config::unknown_variables(names.iter().map(String::as_str))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        unknown.is_empty(),
        "used by the scripts but unknown to kiln_shared::config (define them, or list a tooling \
         variable in config/unknown.rs): {unknown:?}"
    );
}

const BEGIN: &str = "<!-- BEGIN GENERATED: the variables, from shared/src/config -->\n";
const END: &str = "<!-- END GENERATED -->\n";

/// Compares `path` with what the definitions generate; with `KILN_BLESS=1`, rewrites it.
fn generated(path: &str, expected: &str) -> Option<String> {
    let file = root().join(path);
    let actual = std::fs::read_to_string(&file).unwrap_or_default();
    if actual == expected {
        return None;
    }
    if std::env::var("KILN_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&file, expected).unwrap();
        return None;
    }
    Some(format!("{path} differs from what the definitions generate"))
}

#[test]
fn the_example_and_the_reference_are_generated_from_the_definitions() {
    let page = std::fs::read_to_string(root().join(CONFIG_PAGE)).expect("the configuration page");
    let (before, rest) = page
        .split_once(BEGIN)
        .unwrap_or_else(|| panic!("{CONFIG_PAGE} lacks the line {BEGIN:?}"));
    let (_, after) = rest
        .split_once(END)
        .unwrap_or_else(|| panic!("{CONFIG_PAGE} lacks the line {END:?}"));
    let page = format!("{before}{BEGIN}{}{END}{after}", config::reference());
    let stale: Vec<String> = [
        generated("deploy/kiln.env.example", &config::env_example()),
        generated(CONFIG_PAGE, &page),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(
        stale.is_empty(),
        "{}; regenerate with `{}`",
        stale.join("; "),
        config::REGENERATE
    );
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, punctuation other than `-` and
/// `_` dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The lines of a markdown file outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|l| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

fn anchors(file: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap();
    prose(&text)
        .into_iter()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|h| anchor(h.trim_start_matches('#')))
        .collect()
}

/// The targets of the inline links `[text](target)` of a line.
fn link_targets(line: &str) -> Vec<&str> {
    line.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &line[at + 2..];
            let end = rest.find(')')?;
            Some(rest[..end].split_whitespace().next().unwrap_or(""))
        })
        .collect()
}

#[test]
fn every_relative_link_in_the_markdown_resolves() {
    let root = root().canonicalize().unwrap();
    let mut pages = Vec::new();
    files(&root, ".md", &mut pages);
    assert!(pages.len() >= 10, "only {} markdown files found", pages.len());
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for line in prose(&text) {
            for target in link_targets(line) {
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (file, fragment) = match target.split_once('#') {
                    Some((f, a)) => (f, Some(a)),
                    None => (target, None),
                };
                let resolved = if file.is_empty() {
                    page.clone()
                } else {
                    page.parent().unwrap().join(file)
                };
                let shown = page.strip_prefix(&root).unwrap().display();
                if !resolved.exists() {
                    broken.push(format!("{shown}: {target} (no such file)"));
                } else if let Some(fragment) = fragment {
                    if resolved.extension().is_some_and(|e| e == "md")
                        && !anchors(&resolved).contains(fragment)
                    {
                        broken.push(format!("{shown}: {target} (no such heading)"));
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The backticked names in `s`.
fn code_spans(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

#[test]
fn every_module_the_crate_map_names_exists() {
    let root = root();
    let page = root.join("docs/design/architecture.md");
    let text = std::fs::read_to_string(&page).unwrap();
    let (_, map) = text
        .split_once("### Inside the crates")
        .expect("the architecture page has its crate map");
    let map = map.split("\n## ").next().unwrap();
    let mut checked = 0;
    let mut missing = Vec::new();
    let mut crate_dir: Option<PathBuf> = None;
    for line in map.lines() {
        if let Some(top) = line.strip_prefix("- ") {
            crate_dir = code_spans(top).first().map(|dir| root.join(dir));
            continue;
        }
        let (Some(dir), Some(entry)) = (&crate_dir, line.trim_start().strip_prefix("- ")) else {
            continue;
        };
        // A folder named on the line (`queue/`) holds the files named after it on that line;
        // the nearest such folder is tried first, then the ones before it, the crate's source
        // folder and the repository.
        let mut bases = vec![root.clone(), dir.clone()];
        for span in code_spans(entry) {
            let is_dir = span.ends_with('/');
            if !(is_dir || span.ends_with(".rs")) || span.contains(' ') {
                continue;
            }
            checked += 1;
            match bases.iter().rev().map(|b| b.join(span)).find(|p| p.exists()) {
                Some(found) if is_dir => bases.push(found),
                Some(_) => {}
                None => missing.push(format!("{span} (on the line under {})", dir.display())),
            }
        }
    }
    assert!(
        checked >= 60,
        "only {checked} names checked: has the crate map's shape changed?"
    );
    assert!(
        missing.is_empty(),
        "docs/design/architecture.md names modules that do not exist:\n{}",
        missing.join("\n")
    );
}

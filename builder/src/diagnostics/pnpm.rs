//! pnpm's install errors (`ERR_PNPM_<CODE>  message`): a version or package the registry does
//! not have points at the dependency's line in package.json, a lockfile error at
//! pnpm-lock.yaml, any other install error is its code and message.

use std::sync::LazyLock;

use regex::Regex;

use super::{Found, Sink};

static ERROR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*(?P<code>ERR_PNPM_[A-Z0-9_]+)\s+(?P<msg>.+)$").expect("a valid regex"));

/// `No matching version found for react@^99.0.0 while fetching it from …`.
static NO_MATCH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"No matching version found for (?P<name>@?[^@\s]+)@").expect("a valid regex")
});

/// `GET https://registry.npmjs.org/<name>: Not Found - 404` (or a tarball's URL under it).
static FETCH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"GET https?://\S+?/(?P<name>@[^/\s:]+(?:/|%2[fF])[^/\s:]+|[^@/\s:][^/\s:]*)(?:/-/\S*)?: ")
        .expect("a valid regex")
});

/// `The latest release of react is "19.3.1".`, the line after no matching version.
static LATEST: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"^The latest release of \S+ is "[^"]+""#).expect("a valid regex"));

/// The errors `pnpm run` wraps a script's failure in, which say nothing of their own.
const WRAPPERS: &[&str] = &[
    "ERR_PNPM_RECURSIVE_RUN_FIRST_FAIL",
    "ERR_PNPM_RECURSIVE_EXEC_FIRST_FAIL",
];

pub(super) fn parse(lines: &[&str], sink: &mut Sink) {
    for (i, line) in lines.iter().enumerate() {
        if !line.contains("ERR_PNPM_") {
            continue;
        }
        let Some(c) = ERROR.captures(line) else {
            continue;
        };
        let code = &c["code"];
        if WRAPPERS.contains(&code) {
            continue;
        }
        let mut message = c["msg"].trim().to_owned();
        let package = if code == "ERR_PNPM_NO_MATCHING_VERSION" {
            if let Some(latest) = lines[i + 1..].iter().take(6).find(|l| LATEST.is_match(l.trim())) {
                message.push('\n');
                message.push_str(latest.trim());
            }
            NO_MATCH.captures(&message).map(|n| n["name"].to_owned())
        } else if code == "ERR_PNPM_FETCH_404" {
            FETCH
                .captures(&message)
                .map(|n| n["name"].replace("%2f", "/").replace("%2F", "/"))
        } else {
            None
        };
        let (file, line) = if let Some(name) = &package {
            let line = sink.cx.package_json.and_then(|p| dependency_line(p, name));
            (Some("package.json"), line)
        } else if code == "ERR_PNPM_OUTDATED_LOCKFILE"
            || code.starts_with("ERR_PNPM_LOCKFILE_")
            || code.contains("BROKEN_LOCKFILE")
        {
            (Some("pnpm-lock.yaml"), None)
        } else {
            (None, None)
        };
        sink.push(Found {
            tool: "pnpm",
            file,
            line,
            code: Some(code.to_owned()),
            message,
            ..Found::default()
        });
    }
}

/// The 1-based line of `name`'s entry among package.json's dependencies (the first
/// `"name":` key after a `…dependencies` key, or anywhere when there is none).
pub(super) fn dependency_line(package_json: &str, name: &str) -> Option<u32> {
    let key = Regex::new(&format!(r#"^\s*"{}"\s*:"#, regex::escape(name))).ok()?;
    let deps = Regex::new(r#""\w*[dD]ependencies"\s*:"#).expect("a valid regex");
    let lines: Vec<&str> = package_json.lines().collect();
    let after = lines.iter().position(|l| deps.is_match(l)).unwrap_or(0);
    let found = lines[after..]
        .iter()
        .position(|l| key.is_match(l))
        .map(|p| p + after)
        .or_else(|| lines.iter().position(|l| key.is_match(l)))?;
    u32::try_from(found + 1).ok()
}

#[cfg(test)]
mod tests {
    use kiln_shared::domain::Step;

    use super::super::tests::{assert_clean, parse_as, rows};
    use super::dependency_line;

    #[test]
    fn no_matching_version_points_at_the_dependency() {
        let package_json = include_str!("testdata/pnpm-no-matching-version.package.json");
        let parsed = parse_as(
            Step::Install,
            include_str!("testdata/pnpm-no-matching-version.txt"),
            Some(package_json),
        );
        assert_eq!(
            rows(&parsed),
            [(
                "pnpm",
                Some("package.json"),
                Some(10),
                None,
                Some("ERR_PNPM_NO_MATCHING_VERSION"),
                "No matching version found for react@^99.0.0 while fetching it from https://registry.npmjs.org/\n\
                 The latest release of react is \"19.3.1\". Published at 10/14/2026"
            )]
        );
        assert_eq!(
            package_json.lines().nth(9).map(str::trim),
            Some("\"react\": \"^99.0.0\"")
        );
        assert_clean(&parsed);
    }

    #[test]
    fn unknown_package_points_at_the_dependency() {
        let package_json = include_str!("testdata/pnpm-fetch-404.package.json");
        let parsed = parse_as(
            Step::Install,
            include_str!("testdata/pnpm-fetch-404.txt"),
            Some(package_json),
        );
        assert_eq!(
            rows(&parsed),
            [(
                "pnpm",
                Some("package.json"),
                Some(10),
                None,
                Some("ERR_PNPM_FETCH_404"),
                "GET https://registry.npmjs.org/react-super-fancy-confetti-kiln-missing: Not Found - 404"
            )]
        );
        // Without package.json's text, the file still.
        let parsed = parse_as(Step::Install, include_str!("testdata/pnpm-fetch-404.txt"), None);
        assert_eq!(rows(&parsed)[0].1, Some("package.json"));
        assert_eq!(rows(&parsed)[0].2, None);
    }

    #[test]
    fn outdated_lockfile_points_at_the_lockfile() {
        let parsed = parse_as(
            Step::Install,
            include_str!("testdata/pnpm-outdated-lockfile.txt"),
            None,
        );
        assert_eq!(
            rows(&parsed),
            [(
                "pnpm",
                Some("pnpm-lock.yaml"),
                None,
                None,
                Some("ERR_PNPM_OUTDATED_LOCKFILE"),
                "Cannot install with \"frozen-lockfile\" because pnpm-lock.yaml is not up to date with <ROOT>/package.json"
            )]
        );
    }

    #[test]
    fn dependency_lines() {
        let p = "{\n  \"name\": \"react\",\n  \"dependencies\": {\n    \"@scope/x\": \"1\",\n    \"react\": \"^99\"\n  }\n}";
        assert_eq!(dependency_line(p, "react"), Some(5));
        assert_eq!(dependency_line(p, "@scope/x"), Some(4));
        assert_eq!(dependency_line(p, "vue"), None);
    }
}

//! What the definitions are turned into: the configuration part of each binary's `--help`,
//! `deploy/kiln.env.example`, and the variable tables of `docs/reference/configuration.md`
//! (`shared/tests/docs.rs` regenerates the last two and fails when the files differ).

use super::definition::{Binary, Fallback, Kind, Section, Variable};
use super::variables::SECTIONS;

/// The command that rewrites the generated files.
pub const REGENERATE: &str = "KILN_BLESS=1 cargo test -p kiln-shared --test docs";

/// The configuration part of `binary --help`: every variable it reads, grouped, with its
/// default.
pub fn help(binary: Binary) -> String {
    let mut out = String::from(
        "Configuration: environment variables, or keys of the TOML file KILN_CONFIG names (the\n\
         name without KILN_, in lower case; the environment wins). A secret may instead be\n\
         given as <NAME>_FILE, the path of a file holding it. An unknown KILN_* variable is\n\
         a warning. Reference: docs/reference/configuration.md\n",
    );
    for section in SECTIONS {
        let vars: Vec<&Variable> = shown(section).filter(|v| v.read_by(binary)).collect();
        if vars.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{}:\n", section.title));
        for v in vars {
            let mut head = format!("  {}", v.name);
            let mut notes = Vec::new();
            match v.default {
                Fallback::Value(d) => head.push_str(&format!("={d}")),
                Fallback::Required => notes.push("required".to_owned()),
                Fallback::Otherwise(what) => notes.push(format!("unset: {}", what.replace('`', ""))),
            }
            if v.secret {
                notes.push("secret".into());
            }
            if !notes.is_empty() {
                head.push_str(&format!(" ({})", notes.join(", ")));
            }
            out.push_str(&format!("{head}\n      {}\n", v.help.replace('`', "")));
        }
    }
    out
}

/// The variables a section shows (a refused one only in the reference).
fn shown(section: &Section) -> impl Iterator<Item = &'static Variable> {
    section.variables.iter().filter(|v| v.kind != Kind::Refused)
}

fn readers(v: &Variable) -> String {
    if v.readers.len() == Binary::ALL.len() {
        return "every binary".into();
    }
    v.readers.iter().map(|b| b.name()).collect::<Vec<_>>().join(", ")
}

/// `text` with a capital first letter.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// `text` as `# ` comment lines of at most 100 columns.
fn comment(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > 100 && line.len() > 1 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// `deploy/kiln.env.example`: every variable, section by section; set where a production
/// host needs a value other than the default, else commented out with its default; secrets
/// commented out.
pub fn env_example() -> String {
    let mut out = String::new();
    out.push_str(&comment(
        "/etc/kiln/kiln.env: the environment of kiln-api, kiln-builder and kiln-ops (chmod 600, \
         owned by root: systemd reads it before it runs a unit as kiln; the kiln-ops package \
         installs it so). Every variable is here: set where a production host needs a value, \
         else commented out with its default. Secrets are commented out: set them, or better \
         give <NAME>_FILE, the path of a file holding the value (systemd's LoadCredential=, \
         Docker secrets), e.g. KILN_HMAC_SECRET_FILE=/run/credentials/kiln-api.service/hmac. \
         docs/reference/configuration.md describes each variable.",
    ));
    out.push_str(&comment(&format!(
        "Generated from the definitions in shared/src/config: do not edit; regenerate with `{REGENERATE}`."
    )));
    for section in SECTIONS {
        let title = format!("# --- {} ", section.title);
        out.push_str(&format!("\n{title}{}\n", "-".repeat(100 - title.len())));
        out.push_str(&comment(section.intro));
        for v in shown(section) {
            let mut about = format!("{}.", sentence(v.help));
            match v.default {
                Fallback::Required => about.push_str(" Required."),
                Fallback::Value(d) if v.example.is_some() => about.push_str(&format!(" Default: {d}.")),
                Fallback::Value(_) => {}
                Fallback::Otherwise(what) => about.push_str(&format!(" Unset: {what}.")),
            }
            about.push_str(&format!(" Read by {}.", readers(v)));
            if v.secret {
                about.push_str(&format!(" A secret: or {}_FILE.", v.name));
            }
            out.push('\n');
            out.push_str(&comment(&about.replace('`', "")));
            let value = v.example.or(v.default_value()).or(v.hint).unwrap_or("");
            let set = v.example.is_some() && !v.secret;
            out.push_str(&format!("{}{}={value}\n", if set { "" } else { "# " }, v.name));
        }
    }
    out
}

/// A markdown table cell: `|` escaped, no line breaks.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The variable tables of `docs/reference/configuration.md`, one section each.
pub fn reference() -> String {
    let mut out = String::new();
    for section in SECTIONS {
        out.push_str(&format!("\n### {}\n\n{}\n\n", section.title, section.intro));
        out.push_str("| variable | meaning | value | default | read by |\n|---|---|---|---|---|\n");
        for v in section.variables {
            let mut meaning = v.help.to_owned();
            if !v.details.is_empty() {
                meaning.push_str(". ");
                meaning.push_str(v.details);
            }
            if v.secret {
                meaning.push_str(&format!(" (secret: or `{}_FILE`)", v.name));
            }
            let default = match v.default {
                Fallback::Required => "required".to_owned(),
                Fallback::Value(d) => format!("`{d}`"),
                Fallback::Otherwise(what) => what.to_owned(),
            };
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} |\n",
                v.name,
                cell(&meaning),
                cell(&v.kind.describe()),
                cell(&default),
                readers(v)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_binary_s_help_names_what_it_reads_with_defaults() {
        let api = help(Binary::Api);
        assert!(
            api.contains("\n  KILN_API_ADDR=127.0.0.1:8080\n      the API's listener\n"),
            "{api}"
        );
        assert!(api.contains("  KILN_HMAC_SECRET (required, secret)\n"), "{api}");
        assert!(!api.contains("KILN_BUILD_CPU_SECS"), "{api}");
        let builder = help(Binary::Builder);
        assert!(builder.contains("\nSandbox:\n  KILN_SANDBOX=auto\n"), "{builder}");
        assert!(
            !builder.contains("KILN_BUILD_USER"),
            "a refused variable is not offered"
        );
        let ops = help(Binary::Ops);
        assert!(ops.contains("  KILN_RETAIN_VERSIONS=200\n"), "{ops}");
        assert!(!ops.contains("\nSandbox:"), "{ops}");
    }
}

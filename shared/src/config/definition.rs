//! The one definition of every variable a Kiln binary reads: its name, the shape of its
//! value, its default, which binaries read it, whether it is a secret, and what it means.
//!
//! Each section file declares its variables with `section!`; the loaders read values
//! through those definitions (`Source` takes a [`Variable`], never a bare name), so a
//! variable cannot be read without being defined. `variables` lists the sections; the same
//! definitions produce the binaries' `--help`, `deploy/kiln.env.example` and the table of
//! `docs/reference/configuration.md` (`render`), and tell an unknown `KILN_*` variable from
//! a known one (`unknown`).

/// A Kiln binary, as a reader of variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    /// `kiln-api`: the HTTP API and the preview listener.
    Api,
    /// `kiln-builder`: the build daemon, and `kiln-builder maintain`.
    Builder,
    /// `kiln-ops`: `kiln-ops maintain`.
    Ops,
}

impl Binary {
    pub const ALL: [Binary; 3] = [Binary::Api, Binary::Builder, Binary::Ops];

    /// The binary's file name (`kiln-api`).
    pub fn name(self) -> &'static str {
        match self {
            Binary::Api => "kiln-api",
            Binary::Builder => "kiln-builder",
            Binary::Ops => "kiln-ops",
        }
    }
}

/// Every binary.
pub(super) const ALL: &[Binary] = &Binary::ALL;
pub(super) const API: &[Binary] = &[Binary::Api];
pub(super) const BUILDER: &[Binary] = &[Binary::Builder];
pub(super) const OPS: &[Binary] = &[Binary::Ops];
pub(super) const API_BUILDER: &[Binary] = &[Binary::Api, Binary::Builder];
pub(super) const API_OPS: &[Binary] = &[Binary::Api, Binary::Ops];
pub(super) const BUILDER_OPS: &[Binary] = &[Binary::Builder, Binary::Ops];

/// The shape of a variable's value (shown in the reference; the loader that parses it
/// checks it reads the variable as this kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text (a name, a command).
    Text,
    /// A URL.
    Url,
    /// `host:port` to listen on.
    Address,
    /// A path on the host.
    Path,
    /// An integer greater than 0.
    Positive,
    /// An integer greater than 0, or `off`.
    PositiveOrOff,
    /// An integer, 0 included.
    Count,
    /// `on` or `off` (also `true`/`false`, `1`/`0`).
    Switch,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// A value with a syntax of its own, described.
    Format(&'static str),
    /// No value is accepted: the binary stops naming the variable that replaced it.
    Refused,
}

impl Kind {
    /// How the reference describes the value.
    pub fn describe(self) -> String {
        match self {
            Kind::Text => "text".into(),
            Kind::Url => "URL".into(),
            Kind::Address => "`host:port`".into(),
            Kind::Path => "path".into(),
            Kind::Positive => "integer ≥ 1".into(),
            Kind::PositiveOrOff => "integer ≥ 1, or `off`".into(),
            Kind::Count => "integer ≥ 0".into(),
            Kind::Switch => "`on` or `off`".into(),
            Kind::OneOf(words) => words
                .iter()
                .map(|w| format!("`{w}`"))
                .collect::<Vec<_>>()
                .join(", "),
            Kind::Format(shape) => shape.into(),
            Kind::Refused => "(refused)".into(),
        }
    }
}

/// What holds when a variable is not set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// The binary refuses to start without it.
    Required,
    /// This value, read exactly as if it had been set.
    Value(&'static str),
    /// No value; the text says what happens then (`no cap`, `<data dir>/work`).
    Otherwise(&'static str),
}

/// One variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    /// `KILN_BUILD_TIMEOUT_SECS` (a few, such as `AWS_ACCESS_KEY_ID`, have no prefix).
    pub name: &'static str,
    pub kind: Kind,
    pub default: Fallback,
    /// The binaries that read it.
    pub readers: &'static [Binary],
    /// What it means, in one line (also the meaning a "required" error prints).
    pub help: &'static str,
    /// More for the reference page, after `help`.
    pub details: &'static str,
    /// A secret: never logged, and it may be given as `<NAME>_FILE` (the path of a file
    /// holding the value).
    pub secret: bool,
    /// A value `deploy/kiln.env.example` sets for a production host, when the default is
    /// not what one would deploy (a secret's stays commented out).
    pub example: Option<&'static str>,
    /// A value the example shows commented out, when the variable is unset by default.
    pub hint: Option<&'static str>,
    /// Read from the environment only, never from the `KILN_CONFIG` file (it is needed before
    /// the file is read: the file's own path, the logs).
    pub env_only: bool,
}

impl Variable {
    pub(super) const fn new(
        name: &'static str,
        kind: Kind,
        default: Fallback,
        readers: &'static [Binary],
        help: &'static str,
    ) -> Self {
        Self {
            name,
            kind,
            default,
            readers,
            help,
            details: "",
            secret: false,
            example: None,
            hint: None,
            env_only: false,
        }
    }

    pub(super) const fn env_only(self) -> Self {
        Self {
            env_only: true,
            ..self
        }
    }

    pub(super) const fn details(self, details: &'static str) -> Self {
        Self { details, ..self }
    }

    pub(super) const fn secret(self) -> Self {
        Self { secret: true, ..self }
    }

    pub(super) const fn example(self, value: &'static str) -> Self {
        Self {
            example: Some(value),
            ..self
        }
    }

    pub(super) const fn hint(self, value: &'static str) -> Self {
        Self {
            hint: Some(value),
            ..self
        }
    }

    /// The default value, when there is one.
    pub fn default_value(&self) -> Option<&'static str> {
        match self.default {
            Fallback::Value(v) => Some(v),
            Fallback::Required | Fallback::Otherwise(_) => None,
        }
    }

    /// Its key in the `KILN_CONFIG` file: the name without `KILN_`, in lower case.
    pub fn toml_key(&self) -> String {
        self.name.trim_start_matches("KILN_").to_ascii_lowercase()
    }

    /// Whether `binary` reads it.
    pub fn read_by(&self, binary: Binary) -> bool {
        self.readers.contains(&binary)
    }
}

/// The variables of one part of the farm, as `--help`, the example and the reference group
/// them.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    pub title: &'static str,
    /// One sentence on what the section's variables set.
    pub intro: &'static str,
    pub variables: &'static [Variable],
}

/// Declares a section's variables: a constant for each (what its loader reads through) and
/// `SECTION`, which lists every one of them, so none is defined without being listed.
macro_rules! section {
    (title: $title:literal, intro: $intro:literal, $($id:ident = $var:expr;)*) => {
        $(pub(super) const $id: $crate::config::definition::Variable = $var;)*
        pub(super) const SECTION: $crate::config::definition::Section =
            $crate::config::definition::Section {
                title: $title,
                intro: $intro,
                variables: &[$($id),*],
            };
    };
}
pub(super) use section;

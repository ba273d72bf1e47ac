//! Every section's variables, in the order `--help`, the example and the reference show them.

use super::definition::{Section, Variable};
use super::{api, audit, builder, connections, fleet, general, limits, maintenance, preview};
use super::{encryption, packages, sandbox, storage, webhooks};

/// Every section, in order.
pub static SECTIONS: &[Section] = &[
    general::SECTION,
    connections::SECTION,
    storage::SECTION,
    api::SECTION,
    preview::SECTION,
    limits::SECTION,
    builder::SECTION,
    fleet::SECTION,
    webhooks::SECTION,
    sandbox::SECTION,
    audit::SECTION,
    packages::SECTION,
    encryption::SECTION,
    maintenance::SECTION,
];

/// Every variable, section by section.
pub fn variables() -> impl Iterator<Item = &'static Variable> {
    SECTIONS.iter().flat_map(|s| s.variables.iter())
}

/// The variable of this name.
pub fn find(name: &str) -> Option<&'static Variable> {
    variables().find(|v| v.name == name)
}

/// The variables that hold secrets: each may instead be given as `<NAME>_FILE`, the path of
/// a file holding the value (Docker secrets, systemd's `LoadCredential=`), so the value
/// itself is in no environment and no unit file.
pub fn secret_variables() -> impl Iterator<Item = &'static str> {
    variables().filter(|v| v.secret).map(|v| v.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_variable_is_defined_once_with_a_meaning_and_a_reader() {
        let mut seen = BTreeSet::new();
        for v in variables() {
            assert!(seen.insert(v.name), "{} is defined twice", v.name);
            assert!(!v.help.is_empty() && !v.readers.is_empty(), "{}", v.name);
            assert!(
                !v.help.contains('\n') && !v.help.ends_with('.'),
                "{}: help is one line, without a full stop",
                v.name
            );
        }
        assert!(seen.len() >= 75, "only {} variables", seen.len());
    }
}

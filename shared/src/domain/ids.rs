use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ulid::Ulid;

/// Why an id was refused. The message names the field, so it can go to the client as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{field} is required")]
    Missing { field: &'static str },
    #[error("{field} must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-' (got {got:?})")]
    Malformed { field: &'static str, got: String },
    #[error("{field} is not a valid id (expected a 26-character ULID, got {got:?})")]
    NotUlid { field: &'static str, got: String },
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn parse_name(field: &'static str, raw: &str) -> Result<String, IdError> {
    if raw.is_empty() {
        return Err(IdError::Missing { field });
    }
    if raw.len() > 64 || !raw.chars().all(is_name_char) {
        let mut got: String = raw.chars().take(80).collect();
        if got.len() < raw.len() {
            got.push('…');
        }
        return Err(IdError::Malformed { field, got });
    }
    Ok(raw.to_owned())
}

macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses a raw value: 1-64 characters of `[A-Za-z0-9_-]`.
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                parse_name($field, raw).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_id!(
    /// The product's user id (opaque to Kiln).
    UserId,
    "userId"
);
name_id!(
    /// The user's project id (opaque to Kiln, unique per user).
    ProjectId,
    "projectId"
);

/// A version id, which is also its build's id: a ULID, lower-case in URLs, accepted in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionId(Ulid);

impl VersionId {
    pub fn new() -> Self {
        Self(Ulid::new())
    }

    /// Parses a ULID in either case.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        Self::parse_field("versionId", raw)
    }

    /// Parses a ULID, naming `field` in the error.
    pub fn parse_field(field: &'static str, raw: &str) -> Result<Self, IdError> {
        if raw.is_empty() {
            return Err(IdError::Missing { field });
        }
        Ulid::from_str(raw).map(Self).map_err(|_| IdError::NotUlid {
            field,
            got: raw.chars().take(40).collect(),
        })
    }

    /// Milliseconds since the epoch at which the id was made.
    pub fn timestamp_ms(&self) -> u64 {
        self.0.timestamp_ms()
    }
}

impl Default for VersionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_string().to_ascii_lowercase())
    }
}

impl Serialize for VersionId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for VersionId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_the_documented_alphabet_only() {
        assert!(UserId::parse("u_42-A").is_ok());
        assert!(UserId::parse(&"a".repeat(64)).is_ok());
        assert_eq!(UserId::parse(""), Err(IdError::Missing { field: "userId" }));
        assert!(UserId::parse(&"a".repeat(65)).is_err());
        for bad in ["a b", "a/b", "a.b", "é", "a\0"] {
            let err = ProjectId::parse(bad).unwrap_err().to_string();
            assert!(err.starts_with("projectId must be"), "{err}");
        }
    }

    #[test]
    fn version_ids_are_lower_case_and_parse_in_any_case() {
        let id = VersionId::new();
        let lower = id.to_string();
        assert_eq!(lower, lower.to_ascii_lowercase());
        assert_eq!(VersionId::parse(&lower.to_ascii_uppercase()).unwrap(), id);
        assert!(VersionId::parse("not-a-ulid").is_err());
    }
}

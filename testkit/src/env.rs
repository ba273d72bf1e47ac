//! The variables a harness script hands over, read with an error that says which script to
//! run; and the `KILN_TEST_*` variables of `ops/test.sh` (its private PostgreSQL, Redis, Garage
//! and the pnpm store shared by the run) in one place.

use std::env::VarError;

/// A harness: what it is and the script that starts its services and exports its variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Harness {
    /// What the script runs ("the tests").
    pub what: &'static str,
    /// The script (`ops/test.sh`).
    pub script: &'static str,
}

/// The test suites (`cargo test` through `ops/test.sh`).
pub const TESTS: Harness = Harness {
    what: "the tests",
    script: "ops/test.sh",
};

/// The benchmark (`ops/bench/run.sh`).
pub const BENCH: Harness = Harness {
    what: "the benchmark",
    script: "ops/bench/run.sh",
};

/// The chaos suite (`ops/chaos/run.sh`).
pub const CHAOS: Harness = Harness {
    what: "the chaos suite",
    script: "ops/chaos/run.sh",
};

/// A variable the harness script should have set is missing (or not Unicode).
#[derive(Debug, thiserror::Error)]
#[error("{name} is not set: run {} through {}", harness.what, harness.script)]
pub struct Unset {
    pub name: String,
    pub harness: Harness,
    #[source]
    pub source: VarError,
}

impl Harness {
    /// Variable `name`, or an error naming the script that sets it.
    pub fn var(&self, name: &str) -> Result<String, Unset> {
        std::env::var(name).map_err(|source| Unset {
            name: name.to_owned(),
            harness: *self,
            source,
        })
    }

    /// Variable `name`; panics (in a test) with the message of [`Unset`] when it is missing.
    pub fn require(&self, name: &str) -> String {
        self.var(name).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// `ops/test.sh`'s variables, each read with [`TESTS`]`.require` (a missing one panics with
/// "NAME is not set: run the tests through ops/test.sh").
pub mod test {
    use super::TESTS;

    /// An admin URL of the private PostgreSQL (each test creates a database of its own).
    pub const DATABASE_URL: &str = "KILN_TEST_DATABASE_URL";
    /// The private Redis (each test uses a key prefix of its own).
    pub const REDIS_URL: &str = "KILN_TEST_REDIS_URL";
    /// The private Garage (S3): endpoint, region, bucket and keys.
    pub const S3_ENDPOINT: &str = "KILN_TEST_S3_ENDPOINT";
    pub const S3_REGION: &str = "KILN_TEST_S3_REGION";
    pub const S3_BUCKET: &str = "KILN_TEST_S3_BUCKET";
    pub const S3_ACCESS_KEY: &str = "KILN_TEST_S3_ACCESS_KEY";
    pub const S3_SECRET_KEY: &str = "KILN_TEST_S3_SECRET_KEY";
    /// The pnpm store shared by the whole run (optional: see [`pnpm_store`]).
    pub const PNPM_STORE: &str = "KILN_TEST_PNPM_STORE";

    pub fn database_url() -> String {
        TESTS.require(DATABASE_URL)
    }

    pub fn redis_url() -> String {
        TESTS.require(REDIS_URL)
    }

    /// The pnpm store shared by the run, when `ops/test.sh` made one.
    pub fn pnpm_store() -> Option<String> {
        std::env::var(PNPM_STORE).ok()
    }

    /// The private Garage's settings.
    pub fn s3() -> S3 {
        S3 {
            endpoint: TESTS.require(S3_ENDPOINT),
            region: TESTS.require(S3_REGION),
            bucket: TESTS.require(S3_BUCKET),
            access_key: TESTS.require(S3_ACCESS_KEY),
            secret_key: TESTS.require(S3_SECRET_KEY),
        }
    }

    /// The private Garage (S3) of a test run.
    #[derive(Debug, Clone)]
    pub struct S3 {
        pub endpoint: String,
        pub region: String,
        pub bucket: String,
        pub access_key: String,
        pub secret_key: String,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_variable_names_the_script_that_sets_it() {
        let e = BENCH.var("KILN_TESTKIT_SURELY_UNSET").unwrap_err();
        assert_eq!(
            e.to_string(),
            "KILN_TESTKIT_SURELY_UNSET is not set: run the benchmark through ops/bench/run.sh"
        );
        assert!(matches!(e.source, VarError::NotPresent));
    }
}

//! Where the farm's shared state lives: PostgreSQL (the history) and Redis (the queue, the
//! latest pointers, live logs and the fleet).

use secrecy::SecretString;

use super::definition::{section, Fallback, Kind, Variable, ALL};

section! {
    title: "Connections",
    intro: "Where the farm's shared state lives: PostgreSQL (the history) and Redis (the queue, the latest pointers, live logs and the fleet).",
    DATABASE_URL = Variable::new(
        "KILN_DATABASE_URL",
        Kind::Url,
        Fallback::Required,
        ALL,
        "the PostgreSQL URL",
    )
    .secret()
    .example("postgres://kiln:CHANGE-ME@10.0.0.2:5432/kiln");
    REDIS_URL = Variable::new(
        "KILN_REDIS_URL",
        Kind::Url,
        Fallback::Value("redis://127.0.0.1:6379"),
        ALL,
        "the Redis URL",
    )
    .secret()
    .example("redis://:CHANGE-ME@10.0.0.2:6379");
    REDIS_PREFIX = Variable::new(
        "KILN_REDIS_PREFIX",
        Kind::Text,
        Fallback::Value("kiln"),
        ALL,
        "the prefix of every Redis key (no whitespace)",
    );
}

/// PostgreSQL.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `KILN_DATABASE_URL` (required).
    pub url: SecretString,
}

/// Redis.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `KILN_REDIS_URL`, default `redis://127.0.0.1:6379`.
    pub url: SecretString,
    /// Prefix of every Redis key (`KILN_REDIS_PREFIX`, default `kiln`; tests give each test
    /// its own).
    pub prefix: String,
}

//! Where the farm's shared state lives: PostgreSQL (the history) and Redis (the queue, the
//! latest pointers, live logs and the fleet).

use secrecy::SecretString;

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

//! The connection to Redis: one shared multiplexed connection, dedicated ones for blocking
//! reads and Pub/Sub, and `PING` for readiness.

use redis::aio::{ConnectionManager, MultiplexedConnection};
use secrecy::ExposeSecret;

use super::error::RedisError;

/// Kiln's connection to Redis: one multiplexed connection shared by every task (it reconnects
/// by itself), plus dedicated connections for blocking reads, which would stall it.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    shared: ConnectionManager,
    response_timeout: std::time::Duration,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").finish_non_exhaustive()
    }
}

impl Redis {
    /// Another shared connection to the same server, opened lazily by the first task that uses
    /// it (so its I/O is driven by that task's runtime: the API gives each worker thread its own).
    pub fn another(&self) -> Result<Redis, RedisError> {
        Ok(Redis {
            client: self.client.clone(),
            shared: lazy_manager(&self.client, self.response_timeout)?,
            response_timeout: self.response_timeout,
        })
    }

    /// A connection for `SUBSCRIBE`/`PSUBSCRIBE` (it can do nothing else).
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, RedisError> {
        Ok(self.client.get_async_pubsub().await?)
    }

    /// The shared connection (cheap to clone).
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.shared.clone()
    }

    /// A connection of its own, for a command that blocks up to `block`.
    pub(crate) async fn dedicated(
        &self,
        block: std::time::Duration,
    ) -> Result<MultiplexedConnection, RedisError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(block + std::time::Duration::from_secs(5)));
        Ok(self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }
}

const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens the connection lazily (a binary starts while Redis is down, and `/readyz` says so).
/// Every command on the shared connection must answer within `response_timeout`.
pub fn connect(
    url: &secrecy::SecretString,
    response_timeout: std::time::Duration,
) -> Result<Redis, RedisError> {
    let client = redis::Client::open(url.expose_secret()).map_err(|e| RedisError::Malformed {
        key: "KILN_REDIS_URL".into(),
        reason: e.to_string(),
    })?;
    let shared = lazy_manager(&client, response_timeout)?;
    Ok(Redis {
        client,
        shared,
        response_timeout,
    })
}

fn lazy_manager(
    client: &redis::Client,
    response_timeout: std::time::Duration,
) -> Result<ConnectionManager, RedisError> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(1);
    Ok(ConnectionManager::new_lazy_with_config(client.clone(), config)?)
}

/// `PING`, for `/readyz`.
pub async fn ping(redis: &Redis) -> Result<(), RedisError> {
    let _: String = redis::cmd("PING").query_async(&mut redis.conn()).await?;
    Ok(())
}

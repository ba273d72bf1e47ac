//! What Redis keeps of a deleted project, removed: its latest pointer, its label (when it still
//! names this project), its in-flight slot, its rebuilds quota window and its cached gate.

use super::Queue;
use crate::domain::{ProjectId, UserId};
use crate::preview::project_label;
use crate::redis::RedisError;

/// Deletes `KEYS[1..4]`, and `KEYS[5]` (the label) only while it holds `ARGV[1]` (this project's
/// user and project, as the label's [`crate::redis::ProjectRef`] records them). Returns how many keys went.
static REMOVE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"local n = redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
           local label = redis.call('GET', KEYS[5])
           if label and cjson.decode(label)['userId'] == ARGV[1]
              and cjson.decode(label)['projectId'] == ARGV[2] then
             n = n + redis.call('DEL', KEYS[5]) end
           return n"#,
    )
});

impl Queue {
    /// Removes every key of a deleted project (see the module); how many there were.
    pub async fn remove_project(&self, user: &UserId, project: &ProjectId) -> Result<u64, RedisError> {
        let (u, p) = (user.as_str(), project.as_str());
        let label = project_label(user, project);
        let removed: i64 = REMOVE
            .key(self.keys().latest(u, p))
            .key(self.keys().inflight(u, p))
            .key(self.keys().quota_rebuilds(u, p))
            .key(self.keys().project(u, p))
            .key(self.keys().label(&label))
            .arg(u)
            .arg(p)
            .invoke_async(&mut self.redis().conn())
            .await?;
        Ok(removed.max(0) as u64)
    }
}

//! A page of projects, newest activity first (`active_at desc`, then user and project), with
//! each project's version count, latest deployed version and last build, in one statement.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};

use crate::db::DbError;
use crate::domain::{BuildStatus, ProjectId, UserId, VersionId};

/// Where a page starts: just after this project in the listing's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    pub active_at: DateTime<Utc>,
    pub user_id: UserId,
    pub project_id: ProjectId,
}

impl After {
    /// As an opaque cursor: base64url of `{active_at in microseconds}:{user}:{project}` (ids
    /// hold no `:`).
    pub fn cursor(&self) -> String {
        let raw = format!(
            "{}:{}:{}",
            self.active_at.timestamp_micros(),
            self.user_id,
            self.project_id
        );
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// What [`After::cursor`] wrote; `None` for anything else.
    pub fn from_cursor(raw: &str) -> Option<Self> {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).ok()?).ok()?;
        let mut parts = text.splitn(3, ':');
        let (micros, user, project) = (parts.next()?, parts.next()?, parts.next()?);
        Some(After {
            active_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            user_id: UserId::parse(user).ok()?,
            project_id: ProjectId::parse(project).ok()?,
        })
    }
}

/// A project's last build (the newest version row, whatever its status).
#[derive(Debug, Clone)]
pub struct LastBuild {
    pub id: VersionId,
    pub status: BuildStatus,
    pub created_at: DateTime<Utc>,
}

/// One project of a listing.
#[derive(Debug, Clone)]
pub struct Listed {
    pub user_id: UserId,
    pub project_id: ProjectId,
    pub active_at: DateTime<Utc>,
    pub versions: i64,
    pub latest_version_id: Option<VersionId>,
    pub last_build: Option<LastBuild>,
}

impl Listed {
    /// Where the page after this project starts.
    pub fn after(&self) -> After {
        After {
            active_at: self.active_at,
            user_id: self.user_id.clone(),
            project_id: self.project_id.clone(),
        }
    }
}

/// At most `limit` projects (of `user` only, when given) after `after`, newest activity first.
pub async fn page(
    pool: &PgPool,
    user: Option<&UserId>,
    after: Option<&After>,
    limit: i64,
) -> Result<Vec<Listed>, DbError> {
    let rows = sqlx::query(
        "with page as (
             select user_id, project_id, active_at from projects
             where ($1::text is null or user_id = $1)
               and ($2::timestamptz is null
                    or active_at < $2
                    or (active_at = $2 and (user_id, project_id) > ($3, $4)))
             order by active_at desc, user_id, project_id
             limit $5)
         select p.user_id, p.project_id, p.active_at,
                (select count(*) from versions c
                 where c.user_id = p.user_id and c.project_id = p.project_id) as versions,
                (select d.id from versions d
                 where d.user_id = p.user_id and d.project_id = p.project_id and d.status = 'deployed'
                 order by d.finished_at desc, d.id desc limit 1) as latest_id,
                b.id as build_id, b.status as build_status, b.created_at as build_created_at
         from page p
         left join lateral (
             select id, status, created_at from versions l
             where l.user_id = p.user_id and l.project_id = p.project_id
             order by l.id desc limit 1) b on true
         order by p.active_at desc, p.user_id, p.project_id",
    )
    .bind(user.map(UserId::as_str))
    .bind(after.map(|a| a.active_at))
    .bind(after.map(|a| a.user_id.as_str()))
    .bind(after.map(|a| a.project_id.as_str()))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(listed).collect()
}

fn listed(row: &sqlx::postgres::PgRow) -> Result<Listed, DbError> {
    let user: String = row.try_get("user_id")?;
    let project: String = row.try_get("project_id")?;
    let corrupt = |reason: String| DbError::Corrupt {
        id: format!("{user}/{project}"),
        reason,
    };
    let version = |raw: Option<String>| {
        raw.map(|id| VersionId::parse(&id).map_err(|e| corrupt(e.to_string())))
            .transpose()
    };
    let last_build = match version(row.try_get("build_id")?)? {
        None => None,
        Some(id) => {
            let status: String = row.try_get("build_status")?;
            Some(LastBuild {
                id,
                status: status
                    .parse()
                    .map_err(|_| corrupt(format!("build status {status}")))?,
                created_at: row.try_get("build_created_at")?,
            })
        }
    };
    Ok(Listed {
        user_id: UserId::parse(&user).map_err(|e| corrupt(e.to_string()))?,
        project_id: ProjectId::parse(&project).map_err(|e| corrupt(e.to_string()))?,
        active_at: row.try_get("active_at")?,
        versions: row.try_get("versions")?,
        latest_version_id: version(row.try_get("latest_id")?)?,
        last_build,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_written_and_nothing_else_reads() {
        let after = After {
            active_at: DateTime::from_timestamp_micros(1_765_000_000_123_456).unwrap(),
            user_id: UserId::parse("u-1").unwrap(),
            project_id: ProjectId::parse("p_2").unwrap(),
        };
        assert_eq!(After::from_cursor(&after.cursor()), Some(after));
        for bad in [
            "",
            "x",
            "!!!",
            &URL_SAFE_NO_PAD.encode("12:u"),
            &URL_SAFE_NO_PAD.encode("t:u:p"),
            &URL_SAFE_NO_PAD.encode("1:u:p/q"),
        ] {
            assert_eq!(After::from_cursor(bad), None, "{bad}");
        }
    }
}

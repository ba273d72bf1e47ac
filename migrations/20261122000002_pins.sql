-- A pinned version is never removed by retention.
alter table versions add column pinned boolean not null default false;

-- Rollbacks point at their target through parent_version_id and share its manifests.
create index versions_parent_idx on versions (parent_version_id) where parent_version_id is not null;

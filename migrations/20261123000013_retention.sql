-- Issue 7: retention and verification.
--
-- archived_at: maintenance archived the version's output (its blobs moved to archive/ in the
-- store when no live version shares them); it is still served, and restorable.
-- needs_rebuild: verification found a blob of the version missing or corrupt with no copy left.
alter table versions add column archived_at timestamptz;
alter table versions add column needs_rebuild boolean not null default false;

-- Retention deletes old rows: a child keeps its row when its parent goes.
alter table versions drop constraint versions_parent_version_id_fkey;
alter table versions add constraint versions_parent_version_id_fkey
    foreign key (parent_version_id) references versions (id) on delete set null;

-- Maintenance deletes events and webhook deliveries past their retention, oldest first.
create index build_events_created_idx on build_events (created_at);
create index webhook_deliveries_created_idx on webhook_deliveries (created_at);

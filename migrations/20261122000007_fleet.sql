-- A fleet that loses nothing: cancelled and superseded builds, retries, and who runs a build.

-- `cancelled`: stopped by a client. `superseded`: a newer request of the same project replaced
-- it while it was still queued (`superseded_by` names the newer build).
alter table versions drop constraint versions_status_check;
alter table versions add constraint versions_status_check
    check (status in ('queued', 'running', 'deployed', 'failed', 'cancelled', 'superseded'));

-- the builder (stream consumer) running the current attempt; kept after it ends, for history
alter table versions add column builder_id text check (length(builder_id) <= 200);
-- attempts whose builder was lost (died, or lost its lease); the build fails once it reaches
-- KILN_MAX_ATTEMPTS. `attempts` itself only grows: it fences each attempt's writes.
alter table versions add column lost integer not null default 0 check (lost >= 0);
-- a retry names the build it retries; a superseded build names the build that replaced it
alter table versions add column retry_of text references versions (id) on delete set null;
alter table versions add column superseded_by text references versions (id) on delete set null;
alter table versions add constraint versions_superseded_has_successor
    check (status <> 'superseded' or superseded_by is not null);

-- No-op rebuilds: a build whose sources, settings, environment and toolchain are those of a
-- deployed version of its project is not run again; it becomes a version of its own that serves
-- a copy of that version's output manifest.
--
-- build_key: hex SHA-256 of everything that decides a build's output (computed by the builder;
-- null when the build does not qualify: no lockfile, a generator run, an environment without
-- hashes).
alter table versions add column build_key text check (build_key is null or build_key ~ '^[0-9a-f]{64}$');
-- reused_from: the deployed version whose output this one serves (its manifest was copied under
-- this version's own key, so deleting the source takes nothing from this one).
alter table versions add column reused_from text references versions (id) on delete set null;
-- force: the request asked for a build even when an identical deployed version exists.
alter table versions add column force boolean not null default false;
-- The builder's look-up: one deployed version of the project with the key.
create index versions_build_key_idx on versions (user_id, project_id, build_key)
    where status = 'deployed' and build_key is not null;
-- Deleting a source version finds the versions that name it (to set their reused_from null).
create index versions_reused_from_idx on versions (reused_from) where reused_from is not null;

-- `build_reused`: the build was not run; its output is the named deployed version's.
alter table build_events drop constraint build_events_type_check;
alter table build_events add constraint build_events_type_check check (type in ('build_queued',
    'build_started', 'generate_started', 'generate_completed', 'install_started',
    'install_completed', 'check_started', 'check_completed', 'build_step_started',
    'build_step_completed', 'upload_started', 'upload_completed', 'deploy_completed',
    'build_failed', 'build_superseded', 'build_cancelled', 'build_retrying', 'build_reused'));

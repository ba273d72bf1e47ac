-- Every step of a build emits an event; ids grow per build (1, 2, ...) and are handed out under
-- the version row's lock (`last_event_id`), so concurrent emitters (a builder, a cancel) never
-- collide or leave a gap.
alter table versions add column last_event_id integer not null default 0 check (last_event_id >= 0);

create table build_events (
    build_id text not null references versions (id) on delete cascade,
    id integer not null check (id > 0),
    type text not null check (type in ('build_queued', 'build_started', 'generate_started',
        'generate_completed', 'install_started', 'install_completed', 'build_step_started',
        'build_step_completed', 'upload_started', 'upload_completed', 'deploy_completed',
        'build_failed', 'build_superseded', 'build_cancelled')),
    progress smallint not null check (progress between 0 and 100),
    data jsonb not null default '{}',
    created_at timestamptz not null default now(),
    primary key (build_id, id)
);

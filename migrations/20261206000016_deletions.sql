-- Deleting a project removes its rows in batches; a user's deletion (every project of the user,
-- the account deletion a product offers) is recorded here and done by a background task of the
-- API that holds the row with a lease: when the process dies half-way, another instance (or the
-- same after a restart) takes it over once the lease has expired and finishes it.
create table deletions (
    id text primary key check (id ~ '^del_[0-9a-z]{26}$'),
    user_id text not null check (user_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    status text not null default 'queued' check (status in ('queued', 'running', 'done')),
    projects_total integer not null default 0 check (projects_total >= 0),
    projects_deleted integer not null default 0 check (projects_deleted >= 0),
    -- who works on it (an API instance) and until when; past it, anyone may take it over
    lease_owner text,
    lease_until timestamptz,
    created_at timestamptz not null default now(),
    started_at timestamptz,
    finished_at timestamptz,
    constraint deletions_done_is_finished check (status <> 'done' or finished_at is not null)
);
-- One deletion in progress per user: a second request answers with it.
create unique index deletions_user_active_idx on deletions (user_id) where status <> 'done';
create index deletions_pending_idx on deletions (lease_until) where status <> 'done';

-- A deleted project's builds' webhook deliveries are found by build.
create index webhook_deliveries_build_idx on webhook_deliveries (build_id);

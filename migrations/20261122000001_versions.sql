-- One row per version. A build creates exactly one version and they share one ULID.
create table versions (
    id text primary key check (id ~ '^[0-9a-z]{26}$'),
    user_id text not null check (user_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    project_id text not null check (project_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    -- the project's preview host label (derived from user and project)
    project_label text not null check (project_label ~ '^[a-z0-9-]{1,63}$'),
    kind text not null default 'build' check (kind in ('build', 'rollback')),
    prompt text,
    framework text,
    parent_version_id text references versions (id),
    status text not null check (status in ('queued', 'running', 'deployed', 'failed')),
    -- the build runs the generator before installing (a prompt-only request)
    generate boolean not null default false,
    error text,
    failed_step text check (failed_step in ('queue', 'fetch', 'generate', 'install', 'build', 'output', 'upload', 'record')),
    node_version text,
    pnpm_version text,
    source_manifest_key text,
    output_manifest_key text,
    metadata jsonb,
    attempts integer not null default 0 check (attempts >= 0),
    queue_ms bigint,
    generate_ms bigint,
    install_ms bigint,
    build_ms bigint,
    upload_ms bigint,
    total_ms bigint,
    output_bytes bigint,
    file_count integer,
    created_at timestamptz not null default now(),
    started_at timestamptz,
    finished_at timestamptz,
    constraint versions_failed_has_reason check (status <> 'failed' or (error is not null and failed_step is not null)),
    constraint versions_deployed_has_output check (status <> 'deployed' or output_manifest_key is not null)
);

-- history of a project, newest first (ULIDs sort by time)
create index versions_project_idx on versions (user_id, project_id, id desc);
create index versions_user_idx on versions (user_id, id desc);
create index versions_label_idx on versions (project_label);
create index versions_active_idx on versions (status) where status in ('queued', 'running');

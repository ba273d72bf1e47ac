-- Projects carry configuration that is not source: build settings, environment values and
-- secrets, preview access. A project's row is made by its first build request (or its first
-- setting or environment value) and deleted with everything the project owns.
create table projects (
    user_id text not null check (user_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    project_id text not null check (project_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    -- the build settings (camelCase JSON: installCommand, buildCommand, outputDir, rootDir,
    -- checks, previewAccess, indexable); absent members take Kiln's defaults
    settings jsonb not null default '{}' check (jsonb_typeof(settings) = 'object'),
    -- the key of the keyed hashes of the environment's values recorded on versions (32 random
    -- bytes, made with the first value)
    env_key bytea check (env_key is null or length(env_key) = 32),
    -- the key share links of the project are signed with; replaced to revoke them all
    share_key bytea check (share_key is null or length(share_key) = 32),
    created_at timestamptz not null default now(),
    -- the latest build request, setting or environment change: listings are newest first
    active_at timestamptz not null default now(),
    primary key (user_id, project_id)
);
create index projects_activity_idx on projects (active_at desc, user_id, project_id);
create index projects_user_activity_idx on projects (user_id, active_at desc, project_id);

insert into projects (user_id, project_id, created_at, active_at)
select user_id, project_id, min(created_at), max(created_at)
from versions group by user_id, project_id;

-- One environment value of a project. A plain value is kept as it is; a secret only encrypted
-- (an AEAD, the key named by key_id) and never returned by any route.
create table project_env (
    user_id text not null,
    project_id text not null,
    name text not null check (name ~ '^[A-Z_][A-Z0-9_]{0,127}$'),
    secret boolean not null,
    value text,
    ciphertext bytea,
    key_id text,
    updated_at timestamptz not null default now(),
    primary key (user_id, project_id, name),
    foreign key (user_id, project_id) references projects (user_id, project_id) on delete cascade,
    constraint project_env_secret_is_encrypted check (
        (secret and value is null and ciphertext is not null and key_id is not null)
        or (not secret and value is not null and ciphertext is null and key_id is null))
);

-- What each version was built with:
--  * settings: the effective build settings (the project's, with the request's overrides);
--  * env: the environment, as [{name, secret, hash}] (hash: HMAC-SHA256 of the value under the
--    project's env_key, hex), never a value;
--  * request_env: the request's one-off plain values ({NAME: value});
--  * redeploy_of: the version whose sources a redeploy built.
alter table versions add column settings jsonb check (settings is null or jsonb_typeof(settings) = 'object');
alter table versions add column env jsonb check (env is null or jsonb_typeof(env) = 'array');
alter table versions add column request_env jsonb check (request_env is null or jsonb_typeof(request_env) = 'object');
alter table versions add column redeploy_of text;

-- User tokens: bearer tokens for people using the CLI, each scoped to one user. Only the
-- SHA-256 of a token is kept (tokens are 256 random bits, so a plain hash is enough); the
-- token itself is shown once, when it is created.
create table user_tokens (
    id text primary key check (length(id) = 26 and id !~ '[^0-9a-z]'),
    user_id text not null check (length(user_id) between 1 and 64 and user_id !~ '[^A-Za-z0-9_-]'),
    token_sha256 text not null unique check (length(token_sha256) = 64 and token_sha256 !~ '[^0-9a-f]'),
    description text check (length(description) <= 200),
    created_at timestamptz not null default now(),
    revoked_at timestamptz
);

create index user_tokens_user_idx on user_tokens (user_id, id desc);

-- When each builder was up: one row per interval. A heartbeat extends its builder's open
-- interval, or opens a new one after a gap of more than 30 minutes (as in the seeds).
create table builder_uptime (
    id bigint generated always as identity primary key,
    builder_id text not null check (length(builder_id) between 1 and 200),
    host text not null default '',
    version text not null default '',
    started_at timestamptz not null default now(),
    last_seen_at timestamptz not null default now()
);
create index builder_uptime_builder_idx on builder_uptime (builder_id, last_seen_at desc);
create index builder_uptime_recent_idx on builder_uptime (last_seen_at desc);

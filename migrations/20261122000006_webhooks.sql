-- Webhook subscriptions, and every delivery of an event to one of them.
--
-- A delivery row is written in the same statement as the event it carries, so an event is
-- never recorded without its deliveries; delivery workers (in every API and builder process)
-- claim due rows with `for update skip locked` and a lease, so a worker that dies mid-delivery
-- hands the row to another after the lease.

-- Delivery ids sort by creation time: 12 hex digits of Unix milliseconds, then 14 random ones.
create function kiln_delivery_id() returns text language sql volatile as $$
    select 'dl_' || lpad(to_hex((extract(epoch from clock_timestamp()) * 1000)::bigint), 12, '0')
                 || substr(md5(random()::text || clock_timestamp()::text), 1, 14)
$$;

-- The body sent for one event of one build.
create function kiln_webhook_payload(build text, event integer, kind text, data jsonb,
                                     at timestamptz, user_id text, project_id text)
returns jsonb language sql immutable as $$
    select jsonb_build_object('id', build || '-' || event, 'buildId', build, 'type', kind,
                              'data', data, 'timestamp', at, 'userId', user_id,
                              'projectId', project_id)
$$;

create table webhooks (
    id text primary key check (id ~ '^wh_[0-9a-z]{26}$'),
    url text not null check (url ~ '^https?://' and length(url) <= 2048),
    -- the event types delivered; empty means every type
    event_types text[] not null default '{}',
    -- only this user's builds (null: every user's)
    user_id text check (user_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    -- the signing secret (needed in clear to sign; shown to its creator once)
    secret text not null,
    description text,
    created_at timestamptz not null default now()
);

create table webhook_deliveries (
    id text primary key default kiln_delivery_id() check (id ~ '^dl_[0-9a-z]{26}$'),
    webhook_id text not null references webhooks (id) on delete cascade,
    build_id text not null,
    event_id integer not null,
    event_type text not null,
    -- the exact JSON body that is signed and sent
    payload jsonb not null,
    status text not null default 'pending' check (status in ('pending', 'delivered', 'failed')),
    attempts integer not null default 0 check (attempts >= 0),
    -- when the next attempt is due (also the claim's lease while an attempt runs)
    next_attempt_at timestamptz not null default now(),
    last_status_code integer,
    last_error text,
    redelivery_of text references webhook_deliveries (id) on delete set null,
    created_at timestamptz not null default now(),
    delivered_at timestamptz
);

create index webhook_deliveries_due_idx on webhook_deliveries (next_attempt_at) where status = 'pending';
create index webhook_deliveries_webhook_idx on webhook_deliveries (webhook_id, id desc);

create table webhook_attempts (
    delivery_id text not null references webhook_deliveries (id) on delete cascade,
    n integer not null check (n > 0),
    at timestamptz not null default now(),
    status_code integer,
    error text,
    duration_ms integer not null,
    primary key (delivery_id, n)
);

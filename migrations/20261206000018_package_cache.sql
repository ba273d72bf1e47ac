-- The fleet-wide package cache: which tarball (its sha512, the key of the object
-- `packages/sha512/<hex>` in the artifact store) is the registry's for a package's name and
-- version. Rows are written only by builder daemons, from tarballs they fetched from the
-- registry and checked against the registry's own metadata; never from a project's lockfile.
-- `last_used_at` is moved at most once a day; `kiln-ops maintain` deletes rows (and then
-- objects no row names) unused for KILN_PACKAGE_CACHE_DAYS.
create table package_cache (
    name text not null check (length(name) between 1 and 214),
    version text not null check (length(version) between 1 and 256),
    integrity text not null check (integrity ~ '^[0-9a-f]{128}$'),
    bytes bigint not null check (bytes >= 0),
    fetched_at timestamptz not null default now(),
    last_used_at timestamptz not null default now(),
    primary key (name, version)
);
create index package_cache_integrity_idx on package_cache (integrity);
create index package_cache_last_used_idx on package_cache (last_used_at);

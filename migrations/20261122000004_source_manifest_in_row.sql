-- A version's source manifest (path -> hash, size, content type) lives in its row from here on:
-- admission then creates no object besides the new blobs (one store PUT less per build, which on
-- R2 is a network round trip and on a filesystem store two inode allocations). The blobs stay in
-- the artifact store. Rows recorded before this migration keep `source_manifest_key` (a manifest
-- in the store) and are read through it while `source_manifest` is null.
alter table versions add column source_manifest jsonb;

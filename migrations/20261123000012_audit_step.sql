-- A build can fail at the dependency audit (KILN_AUDIT=fail and a critical advisory).
alter table versions drop constraint versions_failed_step_check;
alter table versions add constraint versions_failed_step_check
    check (failed_step in ('queue', 'fetch', 'generate', 'install', 'audit', 'build', 'output', 'upload', 'record'));

-- What a build says went wrong, in a form a program can act on, and what it was built as.
--  * diagnostics: up to 50 {step, tool, severity, file, line, column, code, message} of a failed
--    build (or of a deployed build's checks in "warn" mode); diagnostics_total counts them all.
--  * output_dir: the folder the build's output was published from ('.' for a tree published as
--    it is); framework (already a column) is now recorded on failed builds too.
--  * check_ms: the checks' phase (typecheck, lint), run after install and before build.
--  * a build can fail at the checks (step 'check'), which emit check_started/check_completed.
alter table versions add column diagnostics jsonb;
alter table versions add column diagnostics_total integer;
alter table versions add column output_dir text;
alter table versions add column check_ms bigint;
-- The checks the build asked for ({"typecheck": "off"|"warn"|"fail", "lint": ...}; null: none).
alter table versions add column checks jsonb;
alter table versions add constraint versions_diagnostics_is_array
    check (diagnostics is null or jsonb_typeof(diagnostics) = 'array');

alter table versions drop constraint versions_failed_step_check;
alter table versions add constraint versions_failed_step_check
    check (failed_step in ('queue', 'fetch', 'generate', 'install', 'audit', 'check', 'build', 'output', 'upload', 'record'));

alter table build_events drop constraint build_events_type_check;
alter table build_events add constraint build_events_type_check check (type in ('build_queued',
    'build_started', 'generate_started', 'generate_completed', 'install_started',
    'install_completed', 'check_started', 'check_completed', 'build_step_started',
    'build_step_completed', 'upload_started', 'upload_completed', 'deploy_completed',
    'build_failed', 'build_superseded', 'build_cancelled', 'build_retrying'));

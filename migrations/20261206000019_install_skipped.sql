-- `install_skipped`: a build restored its project's warm dependency tree instead of installing.
-- `build_reused`: a build identical to a deployed version reused its output.
alter table build_events drop constraint build_events_type_check;
alter table build_events add constraint build_events_type_check check (type in ('build_queued',
    'build_started', 'generate_started', 'generate_completed', 'install_started',
    'install_completed', 'install_skipped', 'check_started', 'check_completed',
    'build_step_started', 'build_step_completed', 'upload_started', 'upload_completed',
    'deploy_completed', 'build_failed', 'build_superseded', 'build_cancelled', 'build_retrying',
    'build_reused'));

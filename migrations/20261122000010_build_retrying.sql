-- `build_retrying`: an attempt hit an infrastructure error (artifact store unreachable, disk
-- full, a tool that cannot start) and the build goes back to the queue for another attempt.
alter table build_events drop constraint build_events_type_check;
alter table build_events add constraint build_events_type_check check (type in ('build_queued',
    'build_started', 'generate_started', 'generate_completed', 'install_started',
    'install_completed', 'build_step_started', 'build_step_completed', 'upload_started',
    'upload_completed', 'deploy_completed', 'build_failed', 'build_superseded', 'build_cancelled',
    'build_retrying'));

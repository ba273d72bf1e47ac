-- Admission and the latest-pointer fallback look up a project's newest deployed version; without
-- this index the planner may walk all of a user's versions.
create index versions_latest_deployed_idx
    on versions (user_id, project_id, finished_at desc, id desc)
    where status = 'deployed';

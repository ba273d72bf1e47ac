-- The identifier checks said the same thing with bounded repetition ('^[a-z0-9-]{1,63}$'), which
-- PostgreSQL's regex engine runs slowly: on admission's batched insert the four checks of a
-- version row cost about as much as the rest of the row (measured with pgbench: 2,800 -> 4,000
-- batches of 8 rows a second on 2 cores). The same rules as a length and a negated character
-- class are checked in a fraction of the time. The API validates all of these at the edge
-- already; the checks stay as the database's own guard.
alter table versions
    drop constraint versions_id_check,
    drop constraint versions_user_id_check,
    drop constraint versions_project_id_check,
    drop constraint versions_project_label_check,
    add constraint versions_id_check check (length(id) = 26 and id !~ '[^0-9a-z]'),
    add constraint versions_user_id_check
        check (length(user_id) between 1 and 64 and user_id !~ '[^A-Za-z0-9_-]'),
    add constraint versions_project_id_check
        check (length(project_id) between 1 and 64 and project_id !~ '[^A-Za-z0-9_-]'),
    add constraint versions_project_label_check
        check (length(project_label) between 1 and 63 and project_label !~ '[^a-z0-9-]');

alter table webhooks
    drop constraint webhooks_id_check,
    drop constraint webhooks_user_id_check,
    add constraint webhooks_id_check
        check (length(id) = 29 and left(id, 3) = 'wh_' and substr(id, 4) !~ '[^0-9a-z]'),
    add constraint webhooks_user_id_check
        check (length(user_id) between 1 and 64 and user_id !~ '[^A-Za-z0-9_-]');

alter table webhook_deliveries
    drop constraint webhook_deliveries_id_check,
    add constraint webhook_deliveries_id_check
        check (length(id) = 29 and left(id, 3) = 'dl_' and substr(id, 4) !~ '[^0-9a-z]');

-- The streaming stage's producer sends `click` events; both paths share one vocabulary (pulse.domain.EVENT_TYPES).
-- Partitions attached by a load may keep a local copy of the check (created LIKE the parent): dropped as well.
alter table staging.events drop constraint if exists events_event_type_check;
do $$
declare part regclass;
begin
    for part in select inhrelid::regclass from pg_inherits where inhparent = 'staging.events'::regclass loop
        execute format('alter table %s drop constraint if exists events_event_type_check', part);
    end loop;
end $$;
alter table staging.events add constraint events_event_type_check
    check (event_type in ('view', 'click', 'cart', 'remove_from_cart', 'purchase'));

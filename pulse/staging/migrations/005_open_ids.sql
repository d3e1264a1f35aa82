-- The open event model: a user, product or category id is text (a pseudo id, a stock code such as
-- 85123A, a profile name), a price may be zero or negative (a refund), any event type is allowed (a
-- source may still close its vocabulary in its spec), and the columns a spec does not map are kept as
-- the event's properties. Integer ids of earlier loads become their decimal text: the same ids.
alter table staging.events
    alter column user_id type text using user_id::text,
    alter column product_id type text using product_id::text,
    alter column category_id type text using category_id::text,
    add column properties jsonb not null default '{}';
alter table staging.users alter column user_id type text using user_id::text;
alter table staging.products
    alter column product_id type text using product_id::text,
    alter column category_id type text using category_id::text;

-- the closed event types and the positive price go, on the parent and on every attached partition
-- (a partition made LIKE the parent carries its own copies of the checks)
alter table staging.events drop constraint if exists events_event_type_check;
alter table staging.events drop constraint if exists events_price_check;
do $$
declare part regclass;
begin
    for part in select inhrelid::regclass from pg_inherits where inhparent = 'staging.events'::regclass loop
        execute format('alter table %s drop constraint if exists events_event_type_check', part);
        execute format('alter table %s drop constraint if exists events_price_check', part);
    end loop;
end $$;

-- a day may hold only refunds: no purchases, so no average purchase value
alter table staging.daily_revenue alter column avg_purchase_value_usd drop not null;

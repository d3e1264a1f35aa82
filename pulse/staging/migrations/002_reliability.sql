-- Honest names: a purchase event is one line item; the data has no order id, so there are no "orders".
alter table staging.daily_revenue rename column orders to purchases;
alter table staging.daily_revenue rename column aov_usd to avg_purchase_value_usd;

-- Completeness watermark: events land up to `late_arrival_days` ingest days after they happen, so a
-- day is complete once that many later ingest dates are in. The marts mark later days incomplete.
alter table staging.load_runs add column max_ingest_date date;
alter table staging.load_runs add column complete_through date;
-- A refresh that would shrink the source sharply is refused unless forced; record when it was.
alter table staging.load_runs add column forced boolean not null default false;

-- Which Spark task has loaded which part of a run's load table: a retried or speculative task finds
-- its partition done and skips it, so a retry never fails on the primary key nor loads rows twice.
create table staging.load_run_tasks (
    run_id       text   not null,
    table_name   text   not null,
    partition_id int    not null,
    rows         bigint not null,
    primary key (run_id, table_name, partition_id)
);

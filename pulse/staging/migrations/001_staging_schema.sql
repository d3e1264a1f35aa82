-- Stage 1 staging warehouse: clean events, dimensions, daily aggregates, quarantine, load audit.
-- Data tables are LIST-partitioned by `source`: a load builds the new partition of its source
-- aside (COPY, then indexes) and swaps it in with DETACH/ATTACH in one short transaction.
create schema if not exists staging;
create schema if not exists staging_load;  -- per-run unlogged tables the Spark executors COPY into

create table staging.events (
    source        text        not null,
    event_id      text        not null,
    event_time    timestamptz not null,
    event_date    date        not null,
    event_hour    smallint    not null,
    event_type    text        not null check (event_type in ('view', 'cart', 'remove_from_cart', 'purchase')),
    user_id       bigint      not null,
    session_id    text        not null,
    product_id    bigint,
    category_id   bigint,
    category_code text,
    brand         text,
    price         numeric(14, 2) check (price > 0),
    currency      text        not null,
    price_usd     numeric(14, 2),
    platform      text,
    country       text,
    app_version   text,
    channel       text,
    ingest_date   date        not null,
    is_late       boolean     not null,
    run_id        text        not null,
    primary key (source, event_id)
) partition by list (source);
create index events_date_idx on staging.events (source, event_date);
create index events_user_idx on staging.events (source, user_id, event_time);

create table staging.users (
    source              text        not null,
    user_id             bigint      not null,
    first_seen_at       timestamptz not null,
    last_seen_at        timestamptz not null,
    first_event_date    date        not null,
    first_platform      text,
    country             text,
    acquisition_channel text,
    last_app_version    text,
    events              bigint      not null,
    sessions            bigint      not null,
    purchases           bigint      not null,
    revenue_usd         numeric(16, 2) not null,
    primary key (source, user_id)
) partition by list (source);

create table staging.products (
    source         text   not null,
    product_id     bigint not null,
    category_id    bigint,
    category_code  text,
    brand          text,
    last_price_usd numeric(14, 2),
    views          bigint not null,
    carts          bigint not null,
    purchases      bigint not null,
    primary key (source, product_id)
) partition by list (source);

create table staging.daily_event_counts (
    source     text   not null,
    event_date date   not null,
    event_type text   not null,
    events     bigint not null,
    users      bigint not null,
    primary key (source, event_date, event_type)
) partition by list (source);

create table staging.daily_active_users (
    source     text   not null,
    event_date date   not null,
    dau        bigint not null,
    sessions   bigint not null,
    new_users  bigint not null,
    primary key (source, event_date)
) partition by list (source);

create table staging.daily_revenue (
    source       text           not null,
    event_date   date           not null,
    orders       bigint         not null,
    revenue_usd  numeric(16, 2) not null,
    paying_users bigint         not null,
    aov_usd      numeric(14, 2) not null,
    primary key (source, event_date)
) partition by list (source);

create table staging.quarantine (
    source      text   not null,
    run_id      text   not null,
    ingest_date date,
    source_file text   not null,
    row_number  bigint not null,
    rule        text   not null,
    detail      text,
    raw_record  jsonb  not null,
    primary key (source, source_file, row_number)
) partition by list (source);
create index quarantine_rule_idx on staging.quarantine (source, rule);

create table staging.load_runs (
    run_id           text        primary key,
    source           text        not null,
    status           text        not null check (status in ('running', 'succeeded', 'failed')),
    started_at       timestamptz not null default now(),
    finished_at      timestamptz,
    ingest_dates     int,
    rows_in          bigint,
    rows_out         bigint,
    rows_quarantined bigint,
    spark_seconds    double precision,
    load_seconds     double precision,
    error            text
);

create table staging.load_run_rules (
    run_id text   not null references staging.load_runs (run_id) on delete cascade,
    rule   text   not null,
    rows   bigint not null,
    primary key (run_id, rule)
);

create table staging.load_run_tables (
    run_id     text   not null references staging.load_runs (run_id) on delete cascade,
    table_name text   not null,
    rows       bigint not null,
    primary key (run_id, table_name)
);

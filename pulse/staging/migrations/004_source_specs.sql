-- Source specs (pulse.sources): each load records the spec it applied and the rows the spec's filters
-- left out on purpose (counted per filter, never quarantined, never silently lost).
alter table staging.load_runs
    add column spec_name     text,
    add column spec_version  text,
    add column rows_filtered bigint;

create table staging.source_specs (
    spec_version  text        primary key,  -- the first 12 hex digits of the YAML's sha256
    name          text        not null,
    spec          text        not null,     -- the YAML as written
    first_used_at timestamptz not null default now()
);

create table staging.load_run_filters (
    run_id text   not null references staging.load_runs (run_id) on delete cascade,
    filter text   not null,
    rows   bigint not null,
    primary key (run_id, filter)
);

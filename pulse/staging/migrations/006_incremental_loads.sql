-- Incremental loads: a load reads only the RAW files no earlier load of the source took, so the audit
-- keeps which files (and which event days) each load took; a full refresh starts that record anew.
alter table staging.load_runs
    add column mode text not null default 'full' check (mode in ('full', 'incremental')),
    add column mode_reason text,
    add column rules_version text;

create table staging.load_run_files (
    run_id      text    not null references staging.load_runs (run_id) on delete cascade,
    file_key    text    not null,
    ingest_date date    not null,
    sha256      text    not null,
    correction  boolean not null,
    primary key (run_id, file_key)
);

create table staging.load_run_days (
    run_id     text not null references staging.load_runs (run_id) on delete cascade,
    event_date date not null,
    events     bigint not null,  -- events this load added on that day
    primary key (run_id, event_date)
);

-- the event id of a quarantined row (NULL where it had none that passed): the dedup of a later load
-- must know the ids of near duplicates, which won their id but lost to an earlier event
alter table staging.quarantine add column event_id text;

-- a product's latest event (its attributes), found by index instead of by scanning its history
create index events_product_idx on staging.events (source, product_id, event_time);

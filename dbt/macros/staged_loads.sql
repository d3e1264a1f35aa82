{#
  What an incremental build of the staging layer takes from Postgres: the event days that the source's
  successful loads since the last build touched (`staging.load_run_days`), or every day when there was
  no build yet or one of those loads was a full refresh. `through` is the newest of those loads'
  finish, stored with the rows taken (`staged_through`): the next build starts after it.
#}
{% macro staged_loads() %}
  {% set everything = {'all': true, 'days': [], 'through': none} %}
  {# only a run or build asks the audit: compile and docs run no on-run-start, so Postgres is not attached #}
  {% if not execute or flags.WHICH not in ['run', 'build'] %}{{ return(everything) }}{% endif %}
  {% set src = var('pulse_source') %}
  {% set seen = none %}
  {% if is_incremental() %}
    {% set seen = run_query("select toString(maxOrNull(staged_through)) from " ~ this).columns[0].values()[0] %}
  {% endif %}
  {% set since = "" if seen in (none, '') else "and r.finished_at > toDateTime64('" ~ seen ~ "', 6, 'UTC')" %}
  {% set loads %}
    select toString(maxOrNull(toTimeZone(r.finished_at, 'UTC'))), countIf(r.mode = 'full'), arrayStringConcat(arraySort(groupUniqArray(toString(d.event_date))), ',')
    from {{ source('pulse_staging', 'load_runs') }} as r
    left join {{ source('pulse_staging', 'load_run_days') }} as d on d.run_id = r.run_id
    where r.source = '{{ src }}' and r.status = 'succeeded' {{ since }}
  {% endset %}
  {% set row = run_query(loads).rows[0] %}
  {% if since == "" or row[1] > 0 %}
    {% do everything.update({'through': row[0] or seen}) %}
    {{ return(everything) }}
  {% endif %}
  {{ return({'all': false, 'days': (row[2] or '').split(',') | reject('in', ['', '1970-01-01']) | list, 'through': row[0] or seen}) }}
{% endmacro %}

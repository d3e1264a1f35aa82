{#- The source spec's roles (docs/sources.md): which event types each metric reads. Pulse passes them as
    the var pulse_roles from the spec of the source's last load; the defaults are the demo layout's. -#}

{% macro pulse_roles() -%}
    {%- set roles = var('pulse_roles') -%}
    {%- if roles is not mapping -%}  {#- sqlfluff's stand-in for var() gives text: lint with the defaults -#}
        {%- set roles = {'active': none, 'funnel': ['view', 'cart', 'purchase'], 'revenue': ['purchase'], 'refund': [],
                         'funnel_labels': ['1. viewed', '2. added to cart', '3. purchased'], 'signup': none} -%}
    {%- endif -%}
    {{- return(roles) -}}
{%- endmacro %}

{% macro funnel_steps() -%}
    {{- return(pulse_roles().get('funnel', [])) -}}
{%- endmacro %}

{#- The chart's name of each funnel step, numbered: 1. viewed, 2. added to cart, ... -#}
{% macro funnel_labels() -%}
    {%- set roles = pulse_roles() -%}
    {%- set labels = roles.get('funnel_labels') or [] -%}
    {%- if labels | length != funnel_steps() | length -%}
        {%- set labels = [] -%}
        {%- for step in funnel_steps() %}{% do labels.append(loop.index ~ '. ' ~ step | replace('_', ' ')) %}{% endfor -%}
    {%- endif -%}
    {{- return(labels) -}}
{%- endmacro %}

{% macro role_events(role) -%}
    {%- set roles = pulse_roles() -%}
    {%- if role == 'active' and roles.get('active') is not none -%}
        {#- a purchase, a refund or a signup is activity too: revenue never leaves with the active filter,
            and a cohort never starts on a day its user was not active -#}
        {{- return(roles['active'] + roles.get('revenue', []) + roles.get('refund', []) + ([roles['signup']] if roles.get('signup') else [])) -}}
    {%- endif -%}
    {{- return(roles.get(role)) -}}
{%- endmacro %}

{% macro sql_text(value) -%}
    '{{ value | replace("\\", "\\\\") | replace("'", "\\'") }}'
{%- endmacro %}

{#- A condition on ``column``: its event type is one of the role's (true for `active: all`, false for none). -#}
{% macro is_role(role, column='event_type') -%}
    {%- set names = role_events(role) -%}
    {%- if names is none -%}
        true
    {%- elif names | length == 0 -%}
        false
    {%- else -%}
        {{ column }} in ({% for name in names %}{{ sql_text(name) }}{{ ", " if not loop.last }}{% endfor %})
    {%- endif -%}
{%- endmacro %}

{#- The funnel's i-th step (0-based) as a condition; false past the last step or without a funnel. -#}
{% macro funnel_step(i, column='event_type') -%}
    {%- set steps = funnel_steps() -%}
    {%- if i < steps | length -%}
        {{ column }} = {{ sql_text(steps[i]) }}
    {%- else -%}
        false
    {%- endif -%}
{%- endmacro %}

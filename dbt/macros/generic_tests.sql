{# Generic tests Pulse needs without fetching packages (dbt hub is out of reach). #}

{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count() as n
from {{ model }}
group by {{ columns | join(', ') }}
having n > 1
{% endtest %}

{% test between(model, column_name, min, max) %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null and ({{ column_name }} < {{ min }} or {{ column_name }} > {{ max }})
{% endtest %}

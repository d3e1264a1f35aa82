-- Every user is active in the month they first appear: month 0 retention is exactly 100%.
select * from {{ ref('cohorts_monthly') }} where months_since_first = 0 and active_users != cohort_size

-- Rolling windows nest: every daily user is a weekly user, every weekly user a monthly one.
select * from {{ ref('user_daily_metrics') }} where not (dau <= wau and wau <= mau)

-- An ordered funnel never has more users at a later step than at an earlier one.
select funnel_date, viewers, carters, purchasers
from {{ ref('funnel_daily') }}
where carters > viewers or purchasers > carters

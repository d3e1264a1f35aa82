"""The staging tables aggregated from the events (users, products, daily counts, DAU, revenue), in SQL.

One definition serves both kinds of load: a full refresh aggregates its whole events table aside, an
incremental load recomputes, inside its transaction, only what its new events touch:
- the daily tables for the event days the load touched (and the days whose new users moved);
- users and products by key, adding the load's counts to the stored ones and taking first and last
  attributes from the source's first and last event by index (order: event time, then event id).
So a load's cost follows its own events, not the history behind them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

from psycopg import sql

from pulse.common import pg
from pulse.sources.spec import Roles

DAILY = ["daily_event_counts", "daily_active_users", "daily_revenue"]
TABLES = ["users", "products", *DAILY]


def _any(names: tuple[str, ...] | None) -> sql.Composable:
    if names is None:
        return sql.SQL("true")
    return sql.SQL("event_type = any({})").format(sql.Literal(list(names))) if names else sql.SQL("false")


@dataclass(frozen=True)
class Terms:
    """The roles as SQL predicates over an events row (as ``pulse.sources.spec.Roles`` says)."""

    revenue: sql.Composable
    amount: sql.Composable  # a revenue event its price, a refund minus |price|, else NULL
    view: sql.Composable  # the funnel's first step (no funnel: every product event)
    cart: sql.Composable  # its second step
    active: sql.Composable

    @classmethod
    def of(cls, roles: Roles) -> Terms:
        revenue = _any(roles.revenue)
        amount = sql.SQL("case when {} then price_usd when {} then -abs(price_usd) end").format(revenue, _any(roles.refund))
        funnel = roles.funnel
        view = _any(funnel[:1]) if funnel else sql.SQL("true")
        cart = _any(funnel[1:2]) if len(funnel) > 1 else sql.SQL("false")
        return cls(revenue, amount, view, cart, _any(roles.active_events()))


def _daily(table: str, terms: Terms, events: sql.Composable, where: sql.Composable, users: sql.Composable) -> sql.Composed:
    """``insert into <target> select …`` of one daily table over ``events`` rows meeting ``where``."""
    if table == "daily_event_counts":
        return sql.SQL(
            "(source, event_date, event_type, events, users) select source, event_date, event_type, count(*), "
            "count(distinct user_id) from {} where {} group by 1, 2, 3"
        ).format(events, where)
    if table == "daily_active_users":  # DAU and sessions of active events; new users by their first event's day
        return sql.SQL(
            "(source, event_date, dau, sessions, new_users) select a.source, a.event_date, a.dau, a.sessions, "
            "coalesce(n.new_users, 0) from (select source, event_date, count(distinct user_id) dau, "
            "count(distinct session_id) sessions from {} where {} and {} group by 1, 2) a left join "
            "(select source, first_event_date event_date, count(*) new_users from {} u group by 1, 2) n "
            "using (source, event_date)"
        ).format(events, where, terms.active, users)
    # net revenue: revenue events minus refunds, on days with either; purchases count line items
    return sql.SQL(
        "(source, event_date, purchases, revenue_usd, paying_users, avg_purchase_value_usd) "
        "select source, event_date, count(*) filter (where r), sum(amount)::numeric(16, 2), "
        "count(distinct user_id) filter (where r), case when count(*) filter (where r) > 0 then "
        "round(sum(amount)::numeric(16, 2) / count(*) filter (where r), 2) end::numeric(14, 2) "
        "from (select source, event_date, user_id, {} r, {} amount from {} where {}) e "
        "where amount is not null group by 1, 2"
    ).format(terms.revenue, terms.amount, events, where)


FIRST = "order by event_time, event_id"
LAST = "order by event_time desc, event_id desc"


def _users(terms: Terms, events: sql.Composable) -> sql.Composed:
    return sql.SQL(
        "(source, user_id, first_seen_at, last_seen_at, first_event_date, first_platform, country, acquisition_channel, "
        "last_app_version, events, sessions, purchases, revenue_usd) "
        "select source, user_id, min(event_time), max(event_time), min(event_date), "
        f"(array_agg(platform {FIRST}))[1], (array_agg(country {FIRST}))[1], (array_agg(channel {FIRST}))[1], "
        f"(array_agg(app_version {LAST}))[1], count(*), count(distinct session_id), "
        "count(*) filter (where {}), coalesce(sum({}), 0)::numeric(16, 2) from {} group by 1, 2"
    ).format(terms.revenue, terms.amount, events)


def _products(terms: Terms, events: sql.Composable) -> sql.Composed:
    """Per product: its latest attributes, and events of the funnel's first two steps and of revenue."""
    return sql.SQL(
        "(source, product_id, category_id, category_code, brand, last_price_usd, views, carts, purchases) "
        f"select source, product_id, (array_agg(category_id {LAST}))[1], (array_agg(category_code {LAST}))[1], "
        f"(array_agg(brand {LAST}))[1], (array_agg(price_usd {LAST}))[1], "
        "count(*) filter (where {}), count(*) filter (where {}), count(*) filter (where {}) "
        "from {} where product_id is not null group by 1, 2"
    ).format(terms.view, terms.cart, terms.revenue, events)


def build_all(cfg, roles: Roles, events: sql.Identifier, targets: dict[str, sql.Identifier], workers: int = 2) -> None:
    """A full refresh: every aggregate of the ``events`` table into its (empty) ``targets`` table. The tables
    are independent scans of the events (daily_active_users reads the new users table, so it comes last):
    they run side by side on ``workers`` connections, since Postgres runs no INSERT … SELECT in parallel."""
    terms = Terms.of(roles)
    into = {t: sql.SQL("insert into {} ").format(targets[t]) for t in TABLES}
    first = [
        into["users"] + _users(terms, events),
        into["products"] + _products(terms, events),
        *(into[t] + _daily(t, terms, events, sql.SQL("true"), targets["users"]) for t in DAILY if t != "daily_active_users"),
    ]

    def run(statement: sql.Composed) -> None:
        with pg.connect(cfg) as conn:
            conn.execute(statement)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, first))  # list(): the first failure is raised here
    run(into["daily_active_users"] + _daily("daily_active_users", terms, events, sql.SQL("true"), targets["users"]))


def _merge_users(terms: Terms, source: sql.Literal, new: sql.Identifier) -> sql.Composed:
    """The users of the new events: counts added to the stored ones, first and last event by index, sessions
    recounted (a derived session of a touched day may have changed its id)."""
    one = "from staging.events e where e.source = {s} and e.user_id = d.user_id"
    return sql.SQL(
        "insert into staging.users (source, user_id, first_seen_at, last_seen_at, first_event_date, first_platform, "
        "country, acquisition_channel, last_app_version, events, sessions, purchases, revenue_usd) "
        "select {s}, d.user_id, f.event_time, l.event_time, f.event_date, f.platform, f.country, f.channel, "
        "l.app_version, coalesce(o.events, 0) + d.events, c.sessions, coalesce(o.purchases, 0) + d.purchases, "
        "(coalesce(o.revenue_usd, 0) + d.revenue)::numeric(16, 2) "
        "from (select user_id, count(*) events, count(*) filter (where {rev}) purchases, coalesce(sum({amount}), 0) revenue "
        "from {new} group by user_id) d "
        "left join staging.users o on o.source = {s} and o.user_id = d.user_id "
        "cross join lateral (select event_time, event_date, platform, country, channel "
        f"{one} order by e.event_time, e.event_id limit 1) f "
        f"cross join lateral (select event_time, app_version {one} order by e.event_time desc, e.event_id desc limit 1) l "
        f"cross join lateral (select count(distinct session_id) sessions {one}) c "
        "on conflict (source, user_id) do update set first_seen_at = excluded.first_seen_at, "
        "last_seen_at = excluded.last_seen_at, first_event_date = excluded.first_event_date, "
        "first_platform = excluded.first_platform, country = excluded.country, "
        "acquisition_channel = excluded.acquisition_channel, last_app_version = excluded.last_app_version, "
        "events = excluded.events, sessions = excluded.sessions, purchases = excluded.purchases, "
        "revenue_usd = excluded.revenue_usd"
    ).format(s=source, rev=terms.revenue, amount=terms.amount, new=new)


def _merge_products(terms: Terms, source: sql.Literal, new: sql.Identifier) -> sql.Composed:
    return sql.SQL(
        "insert into staging.products (source, product_id, category_id, category_code, brand, last_price_usd, views, "
        "carts, purchases) select {s}, d.product_id, l.category_id, l.category_code, l.brand, l.price_usd, "
        "coalesce(o.views, 0) + d.views, coalesce(o.carts, 0) + d.carts, coalesce(o.purchases, 0) + d.purchases "
        "from (select product_id, count(*) filter (where {view}) views, count(*) filter (where {cart}) carts, "
        "count(*) filter (where {rev}) purchases from {new} where product_id is not null group by product_id) d "
        "left join staging.products o on o.source = {s} and o.product_id = d.product_id "
        "cross join lateral (select category_id, category_code, brand, price_usd from staging.events e "
        "where e.source = {s} and e.product_id = d.product_id order by e.event_time desc, e.event_id desc limit 1) l "
        "on conflict (source, product_id) do update set category_id = excluded.category_id, "
        "category_code = excluded.category_code, brand = excluded.brand, last_price_usd = excluded.last_price_usd, "
        "views = excluded.views, carts = excluded.carts, purchases = excluded.purchases"
    ).format(s=source, view=terms.view, cart=terms.cart, rev=terms.revenue, new=new)


def merge(conn, roles: Roles, source: str, new: sql.Identifier, days: list[date]) -> list[date]:
    """An incremental load, inside its transaction, after its events (``new``, also in staging.events) went
    in: users, products and the daily tables of ``days`` (and of the days users' first events moved from)
    recomputed. Returns the days recomputed."""
    terms, s = Terms.of(roles), sql.Literal(source)
    # a stored user's first day moves only when the new events hold an earlier day (a late event): only that
    # old day's new_users change; a returning user's later events leave it as it is
    moved = conn.execute(
        sql.SQL(
            "select distinct o.first_event_date from staging.users o join (select user_id, min(event_date) first "
            "from {} group by user_id) d using (user_id) where o.source = {} and d.first < o.first_event_date"
        ).format(new, s)
    ).fetchall()
    conn.execute(_merge_users(terms, s, new))
    conn.execute(_merge_products(terms, s, new))
    touched = sorted(set(days) | {d for (d,) in moved})
    in_days = sql.SQL("source = {} and event_date = any({})").format(s, sql.Literal(touched))
    users = sql.SQL("(select * from staging.users where source = {} and first_event_date = any({}))").format(
        s, sql.Literal(touched)
    )
    events = sql.SQL("staging.events")
    for table in DAILY:
        target = sql.Identifier("staging", table)
        conn.execute(sql.SQL("delete from {} where {}").format(target, in_days))
        conn.execute(sql.SQL("insert into {} ").format(target) + _daily(table, terms, events, in_days, users))
    return touched

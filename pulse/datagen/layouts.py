"""The generator's clean events written in the public layouts the presets read, for the presets' sample
files and their end-to-end tests (made by the project's own generator: no copied data).

``python -m pulse.datagen.layouts`` rewrites the samples shipped in ``pulse/sources/presets/samples/``."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from pulse.datagen.events import GenParams, generate
from pulse.domain import FX_TO_USD

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "sources" / "presets" / "samples"
SAMPLE_PARAMS = GenParams(n_events=2_000, days=28, end_date=date(2026, 10, 31), seed=7, users_per_chunk=2_000)
REES46_COLUMNS = [
    "event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price", "user_id", "user_session",
]  # fmt: skip


def _events(params: GenParams) -> Iterator[dict]:
    """The generator's events one by one, in time order within each chunk of users."""
    start = datetime.combine(params.end_date - timedelta(days=params.days - 1), datetime.min.time(), tzinfo=UTC)
    for chunk in generate(params):
        for i in np.argsort(chunk["t_ms"], kind="stable"):
            yield {k: v[i] for k, v in chunk.items() if k != "users"} | {
                "time": start + timedelta(milliseconds=int(chunk["t_ms"][i]))
            }


def ecommerce_events(params: GenParams = SAMPLE_PARAMS) -> str:
    """REES46 "eCommerce behavior data": ``2019-10-01 00:00:00 UTC`` times, empty category/brand common."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REES46_COLUMNS)
    for e in _events(params):
        code = "" if e["product_id"] % 4 == 0 else e["category_code"]  # as in the real file: often unknown
        brand = "" if e["product_id"] % 7 == 0 else e["brand"]
        writer.writerow([
            e["time"].strftime("%Y-%m-%d %H:%M:%S UTC"), e["event_type"], e["product_id"], e["category_id"],
            code, brand, f"{e['price']:.2f}", e["user_id"], e["user_session"],
        ])  # fmt: skip
    return out.getvalue()


COUNTRY_NAMES = {"US": "United States", "IN": "India", "DE": "Germany", "GB": "United Kingdom", "BR": "Brazil",
                 "FR": "France", "CA": "Canada"}  # fmt: skip
RETAIL_COLUMNS = ["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country"]
LONDON = ZoneInfo("Europe/London")


def _stock_code(product_id: int) -> str:
    """A stock code as the retail export writes them: five digits, some with a letter (85123A)."""
    code = str(10_000 + product_id % 90_000)
    return code + "ABC"[product_id % 3] if product_id % 5 == 0 else code


RETAIL_PARAMS = dataclasses.replace(SAMPLE_PARAMS, n_events=20_000)  # purchases are ~5 % of events
VIEWING_PARAMS = dataclasses.replace(SAMPLE_PARAMS, n_events=1_500)


def online_retail(params: GenParams = RETAIL_PARAMS) -> str:
    """UCI Online Retail II: one line per product of an invoice (a session's purchases), local London time
    to the minute, prices in GBP, customers as ``13085.0`` and a fifth of invoices without one (guests),
    and cancellations: a later ``C`` invoice taking back a line with a negative quantity."""
    rng = np.random.default_rng(params.seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(RETAIL_COLUMNS)
    invoices: dict[str, dict] = {}  # session -> invoice: number, time, customer, lines by stock code
    for e in _events(params):
        if e["event_type"] != "purchase":
            continue
        inv = invoices.setdefault(e["user_session"], {
            "no": str(489_434 + len(invoices)), "time": e["time"], "country": COUNTRY_NAMES[str(e["country"])],
            "customer": "" if rng.random() < 0.2 else f"{int(e['user_id'])}.0", "lines": {},
        })  # fmt: skip
        description = f"{e['brand']} {e['category_code']}".upper()
        line = inv["lines"].setdefault(_stock_code(int(e["product_id"])), [0, description, e["price"]])
        line[0] += int(rng.integers(1, 13))
    for inv in invoices.values():
        when = inv["time"].astimezone(LONDON)
        for code, (quantity, description, price) in inv["lines"].items():
            row = [code, description, quantity, f"{when:%-m/%-d/%Y %-H:%M}", f"{price:.2f}", inv["customer"], inv["country"]]
            writer.writerow([inv["no"], *row])
            if rng.random() < 0.05:  # taken back a day later
                later = when + timedelta(days=1)
                writer.writerow([f"C{inv['no']}", code, description, -quantity, f"{later:%-m/%-d/%Y %-H:%M}", *row[4:]])
    return out.getvalue()


NETFLIX_COLUMNS = ["Profile Name", "Start Time", "Duration", "Attributes", "Title", "Supplemental Video Type",
                   "Device Type", "Bookmark", "Latest Bookmark", "Country"]  # fmt: skip
DEVICES = {"ios": "Apple iPhone 12 Pro", "android": "Samsung Galaxy S21", "web": "Chrome PC (Cadmium)"}


def netflix_viewing(params: GenParams = VIEWING_PARAMS) -> str:
    """Netflix ViewingActivity.csv: every event a title watched by a profile (a user's name), UTC start
    times, h:mm:ss durations, the device, and the country as ``US (United States)``."""
    rng = np.random.default_rng(params.seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(NETFLIX_COLUMNS)
    for e in _events(params):
        seconds = int(rng.integers(60, 3 * 3600))
        duration = f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        country = str(e["country"])
        writer.writerow([
            f"Profile {int(e['user_id'])}", f"{e['time']:%Y-%m-%d %H:%M:%S}", duration, "",
            f"Show {int(e['product_id']) % 400}: Season 1: Episode {int(e['product_id']) % 12 + 1}",
            "TRAILER" if seconds < 180 else "", DEVICES[str(e["platform"])], duration, duration,
            f"{country} ({COUNTRY_NAMES[country]})",
        ])  # fmt: skip
    return out.getvalue()


GA4_NAMES = {"view": "view_item", "click": "select_item", "cart": "add_to_cart", "remove_from_cart": "remove_from_cart",
             "purchase": "purchase"}  # fmt: skip
GA4_DEVICES = {"ios": ("mobile", "iOS"), "android": ("mobile", "Android"), "web": ("desktop", None)}
GA4_PARAMS = dataclasses.replace(SAMPLE_PARAMS, n_events=3_000)


def _ga4_event(e: dict, name: str, at: datetime, session: int) -> dict:
    category, system = GA4_DEVICES[str(e["platform"])]
    usd = round(float(e["price"]) * float(FX_TO_USD[str(e["currency"])]), 2)
    return {
        "event_date": f"{at:%Y%m%d}",
        "event_timestamp": str(int(at.timestamp() * 1_000_000)),  # BigQuery's JSON export writes INT64 as text
        "event_name": name,
        "event_params": [
            {"key": "ga_session_id", "value": {"int_value": str(session)}},
            {"key": "page_title", "value": {"string_value": f"{e['brand']} {e['category_code']}"}},
        ],
        "user_pseudo_id": f"{int(e['user_id'])}.{1_700_000_000 + int(e['user_id'])}",
        "device": {"category": category, "operating_system": system},
        "geo": {"country": COUNTRY_NAMES[str(e["country"])]},
        "app_info": {"version": str(e["app_version"])} if system else None,
        "traffic_source": {"medium": str(e["channel"])},
        "ecommerce": {"purchase_revenue_in_usd": usd} if name == "purchase" else None,
        "items": [{"item_id": f"SKU_{int(e['product_id'])}", "price": usd}],
    }


def ga4_export(params: GenParams = GA4_PARAMS) -> str:
    """GA4 / Firebase BigQuery export as JSON lines: µs timestamps, GA4's event names (a checkout begun
    half a minute before each purchase), sessions numbered by their start (``ga_session_id``), nested
    device, geo, traffic source and ecommerce records, purchase revenue in USD."""
    out = io.StringIO()
    sessions: dict[str, int] = {}
    for e in _events(params):
        session = sessions.setdefault(str(e["user_session"]), int(e["time"].timestamp()))
        if e["event_type"] == "purchase":
            checkout = _ga4_event(e, "begin_checkout", e["time"] - timedelta(seconds=30), session)
            out.write(json.dumps(checkout, separators=(",", ":")) + "\n")
        out.write(json.dumps(_ga4_event(e, GA4_NAMES[str(e["event_type"])], e["time"], session), separators=(",", ":")) + "\n")
    return out.getvalue()


LAYOUTS = {
    "ecommerce_events": (ecommerce_events, "csv"),
    "online_retail": (online_retail, "csv"),
    "netflix_viewing": (netflix_viewing, "csv"),
    "ga4_export": (ga4_export, "jsonl"),
}


def write_samples(directory: Path = SAMPLES_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (render, suffix) in LAYOUTS.items():
        path = directory / f"{name}.{suffix}"
        path.write_text(render())
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_samples():
        print(path)

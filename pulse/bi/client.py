"""A small Superset REST client: login, CSRF, asset import/export, chart data.

Works against the local service or any Superset (``PULSE_SUPERSET_URL``) with the same calls.
Uses only the standard library plus ``requests`` (a dependency of dbt and boto3 already).
"""

from __future__ import annotations

import json
from typing import Any

import requests

from pulse.config import SupersetConfig


class SupersetError(RuntimeError):
    pass


class SupersetClient:
    def __init__(self, cfg: SupersetConfig, timeout: float = 120) -> None:
        self.base = cfg.base_url
        self.timeout = timeout
        self.http = requests.Session()
        # Superset checks the Referer of CSRF-protected writes against its own host
        self.http.headers["Referer"] = self.base + "/"
        resp = self.http.post(
            f"{self.base}/api/v1/security/login",
            json={"username": cfg.admin_user, "password": cfg.admin_password, "provider": "db", "refresh": False},
            timeout=timeout,
        )
        if resp.status_code != 200:
            raise SupersetError(f"login to {self.base} as {cfg.admin_user!r} failed: HTTP {resp.status_code} {resp.text[:200]}")
        self.http.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
        csrf = self.get("/api/v1/security/csrf_token/")["result"]
        self.http.headers["X-CSRFToken"] = csrf

    def _check(self, resp: requests.Response, what: str) -> requests.Response:
        if resp.status_code >= 400:
            raise SupersetError(f"{what}: HTTP {resp.status_code} {resp.text[:500]}")
        return resp

    def get(self, path: str, **params: Any) -> dict:
        return self._check(self.http.get(self.base + path, params=params, timeout=self.timeout), f"GET {path}").json()

    def post(self, path: str, payload: dict) -> dict:
        return self._check(self.http.post(self.base + path, json=payload, timeout=self.timeout), f"POST {path}").json()

    def put(self, path: str, payload: dict) -> dict:
        return self._check(self.http.put(self.base + path, json=payload, timeout=self.timeout), f"PUT {path}").json()

    def import_bundle(self, zip_bytes: bytes, passwords: dict[str, str]) -> None:
        """POST /api/v1/assets/import/: databases, datasets, charts and dashboards in one transaction."""
        resp = self.http.post(
            self.base + "/api/v1/assets/import/",
            files={"bundle": ("pulse_assets.zip", zip_bytes, "application/zip")},
            data={"passwords": json.dumps(passwords)},
            timeout=self.timeout,
        )
        self._check(resp, "asset import")

    def export_dashboards(self, ids: list[int]) -> bytes:
        resp = self.http.get(self.base + "/api/v1/dashboard/export/", params={"q": json.dumps(ids)}, timeout=self.timeout)
        return self._check(resp, "dashboard export").content

    def export_assets(self) -> bytes:
        return self._check(self.http.get(self.base + "/api/v1/assets/export/", timeout=self.timeout), "asset export").content

    def chart_data(self, chart_id: int, force: bool = False) -> dict:
        """The chart's saved query, run the way the dashboard runs it (results from the cache unless force)."""
        params = {"format": "json", "type": "full"}
        if force:
            params["force"] = "true"
        return self.get(f"/api/v1/chart/{chart_id}/data/", **params)

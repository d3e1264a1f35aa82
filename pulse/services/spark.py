"""Spark: pyspark in local mode by default; a cluster by setting PULSE_SPARK_MASTER.

There is no daemon to run in local mode (the driver JVM lives in the job's process),
so this service only reports whether a job could start: Java present, master reachable.
"""

from __future__ import annotations

import shutil
import subprocess
from urllib.parse import urlparse

from pulse.services.base import Service, port_open


class Spark(Service):
    name = "spark"

    @property
    def managed(self) -> bool:
        return self.settings.spark.master.startswith("local")

    @property
    def endpoint(self) -> str:
        return self.settings.spark.master

    def healthy(self) -> tuple[bool, str]:
        java = shutil.which("java")
        if not java:
            return False, "java not found: apt-get install openjdk-17-jre-headless"
        if not self.managed:
            url = urlparse(self.settings.spark.master)
            if not (url.hostname and url.port and port_open(url.hostname, url.port)):
                return False, "master unreachable"
        out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr.splitlines()
        return True, (out[0] if out else "java") + ("; runs in-process" if self.managed else "")

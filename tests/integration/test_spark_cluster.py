"""The cleaning job on a real Spark cluster: a standalone master and one worker started from the pyspark
distribution on loopback, PULSE_SPARK_MASTER pointed at it, and the cleaning job run by the CLI in
its own process (the driver), with the same ground-truth assertions as in local mode. The
Maven-resolved jars reach the executors through spark.jars; the executors read S3 themselves."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import pyspark
import pytest

from pulse.common import pg
from pulse.common.waiting import wait_until
from pulse.datagen import generate_dataset
from pulse.datagen.dirty import DirtParams
from pulse.datagen.events import GenParams
from pulse.lake import raw
from pulse.services.base import port_open

pytestmark = pytest.mark.integration
SOURCE = "cluster"
MASTER_PORT, WORKER_PORT = 27077, 27078


def _spark_class(*args: str, log: Path, env: dict) -> subprocess.Popen:
    spark_home = Path(pyspark.__file__).parent
    return subprocess.Popen(
        [str(spark_home / "bin" / "spark-class"), *args],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


@pytest.fixture(scope="module")
def cluster(stack, tmp_path_factory):
    work = tmp_path_factory.mktemp("spark-cluster")
    spark_home = Path(pyspark.__file__).parent
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_NO_DAEMONIZE": "1",
        "PYSPARK_PYTHON": sys.executable,
    }
    master = _spark_class(
        "org.apache.spark.deploy.master.Master",
        "--host",
        "127.0.0.1",
        "--port",
        str(MASTER_PORT),
        "--webui-port",
        "0",
        log=work / "master.log",
        env=env,
    )
    worker = _spark_class(
        "org.apache.spark.deploy.worker.Worker",
        f"spark://127.0.0.1:{MASTER_PORT}",
        "--host",
        "127.0.0.1",
        "--port",
        str(WORKER_PORT),
        "--webui-port",
        "0",
        "--cores",
        "2",
        "--memory",
        "3g",
        "--work-dir",
        str(work / "work"),
        log=work / "worker.log",
        env=env,
    )

    def worker_log() -> str:
        return (work / "worker.log").read_text(errors="replace")

    try:
        wait_until(
            lambda: port_open("127.0.0.1", MASTER_PORT) and "Successfully registered with master" in worker_log(),
            what="the worker to register with the master",
            timeout=60,
        )
    except TimeoutError as err:
        raise AssertionError(f"{err}; worker log:\n{worker_log()[-2000:]}") from None
    yield f"spark://127.0.0.1:{MASTER_PORT}", work
    for proc in (worker, master):
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    shutil.rmtree(work / "work", ignore_errors=True)


def test_cleaning_on_a_standalone_cluster_matches_ground_truth(stack, cluster, tmp_path):
    master, work = cluster
    out = tmp_path / SOURCE
    truth = generate_dataset(out, GenParams(n_events=15_000, days=20, end_date=date(2026, 10, 31), seed=8), DirtParams(rate=0.04))
    raw.upload_dataset(stack.s3, out, SOURCE)
    env = {**os.environ, "PULSE_SPARK_MASTER": master, "PULSE_SPARK_DRIVER_MEMORY": "1g"}
    done = subprocess.run(
        [sys.executable, "-m", "pulse.cli", "clean", "--source", SOURCE], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # the executors ran on the worker, not in the driver
    apps = list((work / "work").glob("app-*"))
    assert apps, "no application ran on the worker"
    assert list(apps[0].glob("*/stderr")), "no executor logs on the worker"
    with pg.connect(stack.postgres) as conn:
        [(rows_in, rows_out)] = conn.execute(
            "select rows_in, rows_out from staging.load_runs where source = %s and status = 'succeeded' "
            "order by finished_at desc limit 1",
            (SOURCE,),
        ).fetchall()
        [(events,)] = conn.execute("select count(*) from staging.events where source = %s", (SOURCE,)).fetchall()
        by_rule = dict(
            conn.execute("select rule, count(*) from staging.quarantine where source = %s group by rule", (SOURCE,)).fetchall()
        )
        [(revenue,)] = conn.execute("select sum(revenue_usd) from staging.daily_revenue where source = %s", (SOURCE,)).fetchall()
    assert rows_in == truth["raw_rows"] and rows_out == truth["clean_events"] == events
    assert by_rule == {k: v for k, v in truth["quarantined"].items() if v}
    assert str(revenue) == str(truth["revenue_usd"])

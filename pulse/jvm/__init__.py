"""JVM classpaths Pulse resolves from Maven Central at install time (``jvm/<name>/pom.xml`` ->
``.jvm/<name>/*.jar``), and the checks that their versions line up with what they run beside."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from pulse.config import REPO_ROOT

POMS = REPO_ROOT / "jvm"
JARS = REPO_ROOT / ".jvm"
_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


@dataclass(frozen=True)
class Classpath:
    name: str  # "spark" (Spark's extra connectors) or "kafka" (the broker)

    @property
    def pom(self) -> Path:
        return POMS / self.name / "pom.xml"

    @property
    def directory(self) -> Path:
        return JARS / self.name

    def properties(self) -> dict[str, str]:
        root = ET.parse(self.pom).getroot()
        props = root.find("m:properties", _NS)
        return {child.tag.split("}")[1]: (child.text or "").strip() for child in (props if props is not None else [])}

    def jars(self) -> list[Path]:
        return sorted(self.directory.glob("*.jar"))

    def jar(self, artifact: str) -> Path:
        """The resolved jar of an artifact (``hadoop-aws``), or FileNotFoundError with the fix."""
        found = [p for p in self.jars() if re.fullmatch(rf"{re.escape(artifact)}-\d[\w.\-]*\.jar", p.name)]
        if not found:
            raise FileNotFoundError(f"{artifact} not in {self.directory}: run scripts/install.sh (mvn resolves {self.pom})")
        return found[0]

    def classpath(self) -> str:
        if not self.jars():
            raise FileNotFoundError(f"no jars in {self.directory}: run scripts/install.sh (mvn resolves {self.pom})")
        return f"{self.directory}/*"


SPARK = Classpath("spark")
KAFKA = Classpath("kafka")


def version_of(jar: Path) -> str:
    return re.search(r"-(\d[\w.]*?)(?:\.Final)?\.jar$", jar.name).group(1)  # type: ignore[union-attr]


def check_spark_extras() -> str:
    """hadoop-aws = the Hadoop client inside pyspark; the Kafka connector = pyspark's version, Scala 2.13."""
    import pyspark

    bundled = Path(pyspark.__file__).parent / "jars"
    [hadoop_api] = bundled.glob("hadoop-client-api-*.jar")
    hadoop = version_of(hadoop_api)
    aws = version_of(SPARK.jar("hadoop-aws"))
    kafka = version_of(SPARK.jar("spark-sql-kafka-0-10_2.13"))
    problems = []
    if aws != hadoop:
        problems.append(f"hadoop-aws {aws} but pyspark bundles Hadoop {hadoop}: set hadoop.version={hadoop} in {SPARK.pom}")
    if kafka != pyspark.__version__:
        problems.append(
            f"spark-sql-kafka {kafka} but pyspark is {pyspark.__version__}: set spark.version in {SPARK.pom} "
            "(or pin pyspark to a version whose connector is on Maven Central)"
        )
    if problems:
        raise RuntimeError("; ".join(problems))
    return f"pyspark {pyspark.__version__} (Scala 2.13) · hadoop-aws {aws} = Hadoop {hadoop} · spark-sql-kafka {kafka}"


def check_kafka_broker() -> str:
    jar = KAFKA.jar("kafka_2.13")
    return f"kafka_2.13 {version_of(jar)} ({len(KAFKA.jars())} jars)"

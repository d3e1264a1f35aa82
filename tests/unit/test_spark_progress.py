"""The Spark progress line: tasks per active stage, rows read (from files and from the shuffle), elapsed."""

from __future__ import annotations

from dataclasses import dataclass

from pulse.common.spark import progress_line


@dataclass
class Stage:  # the methods (Spark's names) of its StageData that the line reads
    id: int
    done: int
    total: int
    input: int = 0
    shuffled: int = 0

    def stageId(self) -> int:
        return self.id

    def numCompleteTasks(self) -> int:
        return self.done

    def numTasks(self) -> int:
        return self.total

    def inputRecords(self) -> int:
        return self.input

    def shuffleReadRecords(self) -> int:
        return self.shuffled


def test_no_active_stage_prints_nothing():
    assert progress_line("clean", [], 3.0) is None


def test_a_stage_after_a_shuffle_counts_the_rows_it_read_from_it():
    line = progress_line("spark", [Stage(12, 6, 8, input=633, shuffled=5_400_000)], 121.4)
    assert line == "    spark: stage 12 6/8 tasks · 5,400,633 rows read · 121 s"


def test_every_active_stage_is_listed_and_no_rows_says_none():
    line = progress_line("rules", [Stage(3, 0, 4), Stage(4, 2, 2)], 0.2)
    assert line == "    rules: stage 3 0/4 stage 4 2/2 tasks · 0 s"

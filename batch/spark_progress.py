"""Progress of long Spark work: a rich progress bar on a terminal, periodic log lines otherwise.

Jobs started inside `spark_progress(...)` are tagged with a job group; a watcher thread sums
their tasks (done / total) from Spark's status tracker. Only counts travel to the driver.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lakesync.logs import get_logger

log = get_logger(__name__)
_LOG_EVERY_S = 10.0


@contextmanager
def spark_progress(spark: Any, description: str) -> Iterator[None]:
    context = spark.sparkContext
    group = f"lakesync-{uuid.uuid4().hex[:8]}"
    context.setJobGroup(group, description)
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(context, group, description, stop), daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(5)
        context.setLocalProperty("spark.jobGroup.id", None)
        context.setLocalProperty("spark.job.description", None)


def task_counts(context: Any, group: str) -> tuple[int, int]:
    """(completed, total) tasks of the group's jobs so far."""
    tracker = context.statusTracker()
    done = total = 0
    for job_id in tracker.getJobIdsForGroup(group):
        job = tracker.getJobInfo(job_id)
        for stage_id in job.stageIds if job else []:
            stage = tracker.getStageInfo(stage_id)
            if stage:
                done += stage.numCompletedTasks
                total += stage.numTasks
    return done, total


def _watch(context: Any, group: str, description: str, stop: threading.Event) -> None:
    if sys.stderr.isatty():
        _watch_with_bar(context, group, description, stop)
    else:
        _watch_with_logs(context, group, description, stop)


def _watch_with_bar(context: Any, group: str, description: str, stop: threading.Event) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tasks"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(description, total=None)
        while not stop.wait(0.5):
            done, total = task_counts(context, group)
            bar.update(task, completed=done, total=total or None)


def _watch_with_logs(context: Any, group: str, description: str, stop: threading.Event) -> None:
    last = time.monotonic()
    while not stop.wait(1.0):
        if time.monotonic() - last >= _LOG_EVERY_S:
            done, total = task_counts(context, group)
            log.info("progress", work=description, tasks_done=done, tasks_total=total)
            last = time.monotonic()

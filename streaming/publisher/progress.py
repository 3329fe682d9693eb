"""How far the streaming job has published each table, recorded beside its checkpoint.

`<state_dir>/<table>/progress.json`, written after each completed batch, holds:

- `completed_version`: the newest Delta version whose changes are certainly all published (and
  logged in the state snapshot). It comes from the Delta source's end offset, whose
  `reservoirVersion` is the version being read: with `index` -1 none of it was read, otherwise up
  to file `index` of it — which may or may not be its last file, so only the versions before it
  count as complete. `lakesync reconcile` pins its comparison to this version.
- `published_version`: the newest version any published change came from; the Delta version lag
  is the table's latest version minus this (the conservative one would show a lag of 1 forever
  when the table is idle after a batch that ended mid-offset).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

FILE_NAME = "progress.json"


@dataclass(frozen=True)
class Progress:
    completed_version: int
    batch_id: int
    updated_at: str
    published_version: int | None = None

    @classmethod
    def from_query_progress(cls, progress: dict[str, Any], published_version: int | None = None) -> Progress | None:
        """From a StreamingQueryProgress (as a dict); None if it has no Delta end offset."""
        sources = progress.get("sources") or []
        if not sources or not sources[0].get("endOffset"):
            return None
        end = sources[0]["endOffset"]
        offset = json.loads(end) if isinstance(end, str) else end
        if "reservoirVersion" not in offset:
            return None
        completed = int(offset["reservoirVersion"]) - 1
        return cls(
            completed_version=completed,
            batch_id=int(progress["batchId"]),
            updated_at=dt.datetime.now(dt.UTC).isoformat(),
            published_version=max(completed, published_version) if published_version is not None else completed,
        )


def progress_path(table_state: Path) -> Path:
    return table_state / FILE_NAME


def load_progress(table_state: Path) -> Progress | None:
    path = progress_path(table_state)
    if not path.exists():
        return None
    return Progress(**json.loads(path.read_text()))


def save_progress(table_state: Path, progress: Progress) -> None:
    path = progress_path(table_state)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(progress)))
    tmp.replace(path)  # atomic: readers never see half a file

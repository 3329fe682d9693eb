"""How far the streaming job has published each table, recorded beside its checkpoint.

`<state_dir>/<table>/progress.json` holds the newest Delta version whose changes are all
published to Kafka (and logged in the state snapshot), written after each completed batch.
`lakesync reconcile` pins its comparison to this version, and the Delta version lag is the
table's latest version minus it.

The version comes from the Delta source's end offset: `reservoirVersion` is the next version to
read (with `index` -1 when none of it was read), so every version before it is complete.
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

    @classmethod
    def from_query_progress(cls, progress: dict[str, Any]) -> Progress | None:
        """From a StreamingQueryProgress (as a dict); None if it has no Delta end offset."""
        sources = progress.get("sources") or []
        if not sources or not sources[0].get("endOffset"):
            return None
        end = sources[0]["endOffset"]
        offset = json.loads(end) if isinstance(end, str) else end
        if "reservoirVersion" not in offset:
            return None
        return cls(
            completed_version=int(offset["reservoirVersion"]) - 1,
            batch_id=int(progress["batchId"]),
            updated_at=dt.datetime.now(dt.timezone.utc).isoformat(),
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

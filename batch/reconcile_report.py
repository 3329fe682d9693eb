"""The human side of a reconcile result: a summary table and the drifted-key sample."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from batch.comparison import DRIFT_KINDS
from batch.reconcile import ReconcileResult

_LABELS = {
    "equal": "equal",
    "different": "different",
    "missing_in_target": "missing in PostgreSQL",
    "extra_in_target": "extra in PostgreSQL",
    "newer_in_target": "changed after the pinned version (not drift)",
    "deleted_after_pin": "deleted after the pinned version (not drift)",
    "unsyncable": "source rows quarantined by the mapping",
}


# Why the comparison is at its version, as the summary says it.
_PINNED = {
    "stream progress": "the newest version the stream has completely published",
    "requested": "as requested",
    "latest": "the table's latest; no stream progress recorded",
}


def print_summary(result: ReconcileResult, console: Console) -> None:
    verdict = (
        "[green]in sync[/green]" if result.counts.drift == 0 else f"[red]{result.counts.drift:,} drifted key(s)[/red]"
    )
    console.print(
        f"reconcile [bold]{result.table}[/bold] → {result.target} at Delta version {result.version} "
        f"({_PINNED.get(result.pinned_by, result.pinned_by)}): {verdict} in {result.duration_s:.1f} s"
    )
    counts = Table(show_header=True, header_style="bold")
    counts.add_column("keys")
    counts.add_column("count", justify="right")
    for kind, label in _LABELS.items():
        value = getattr(result.counts, kind)
        style = "red" if kind in DRIFT_KINDS and value else None
        counts.add_row(label, f"{value:,}", style=style)
    console.print(counts)
    if result.sample:
        console.print(f"sample of drifted keys ({len(result.sample)}):")
        for entry in result.sample:
            changed = ", ".join(
                f"{name}: {values['source']!r} → {values['target']!r}" for name, values in entry["columns"].items()
            )
            console.print(f"  {entry['kind']:<18} {entry['key']}  {changed if entry['kind'] == 'different' else ''}")
    if result.repaired:
        console.print(f"published {result.repaired:,} repair event(s); the consumer applies them")

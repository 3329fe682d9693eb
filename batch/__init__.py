"""On-demand full work: reconciliation and rebuild."""

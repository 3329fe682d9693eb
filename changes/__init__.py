"""Pure logic of change events: row hashing, per-key collapsing, envelopes, type mapping. No I/O."""

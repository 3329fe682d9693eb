"""`python -m bench` (make bench): run every benchmark in turn with its default arguments."""

from __future__ import annotations

from bench import consumer_apply

if __name__ == "__main__":
    consumer_apply.main([])

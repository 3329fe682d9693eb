"""`python -m bench` (make bench): run every benchmark in turn with its default arguments."""

from __future__ import annotations

from bench import consumer_apply, consumer_scaling, reconcile_rebuild, stream_publish

if __name__ == "__main__":
    # One at a time: each starts its own embedded services and wants the machine to itself.
    for benchmark in (consumer_apply, consumer_scaling, stream_publish, reconcile_rebuild):
        benchmark.main([])

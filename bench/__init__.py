"""Benchmarks on TPC-H data (tpchgen-cli); figures go to BENCHMARKS.md. Run one with `python -m bench.<name>`."""

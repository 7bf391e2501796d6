"""Benchmarks (not tests): `make bench` runs bench/run.py; see docs/benchmarks.md."""

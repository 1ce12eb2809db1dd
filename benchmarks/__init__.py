"""Benchmarks: `make bench` starts one throwaway stack and runs every `bench_*.py` module against it."""

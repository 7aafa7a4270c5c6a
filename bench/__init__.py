"""Benchmarks for the portal (run ``python bench/auth_throughput.py``; see bench/README.md)."""

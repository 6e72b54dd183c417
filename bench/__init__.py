"""Benchmarks for malipo's hot paths (see bench/README.md). Not shipped with the package."""

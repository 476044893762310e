"""Benchmarks and the synthetic council data they (and the tests) run on."""

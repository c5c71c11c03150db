"""Benchmarks: this project's sync against Sling, dlt and the floors, measured in one run."""

"""The bottom layer: table specs, decoders, field rules, settings and the source protocol.

Nothing here imports Dagster, the engine, a concrete source system or the catalog; every other layer
builds on it (see erp_pipelines_tests/test_layers.py).
"""

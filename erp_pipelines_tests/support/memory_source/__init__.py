"""A minimal third source system, kept outside `erp_pipelines`: an in-memory table of notes.

It is registered only through `ERP_SOURCE_PACKAGES=erp_pipelines_tests.support.memory_source.system`, to show
that a source system needs nothing but its package and the registry (README "Adding a source system").
"""

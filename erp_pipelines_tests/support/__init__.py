"""Helpers shared by the tests: plain functions, classes and constants, imported by name. Fixtures stay in the
conftest modules (and the `fixtures_legacy_4d` plugin); nothing here is a fixture."""

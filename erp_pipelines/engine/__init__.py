"""The sync engine: extract → decode → validate → quarantine → load → audit.

Plain Python that knows nothing of Dagster, written once for every source system.
"""

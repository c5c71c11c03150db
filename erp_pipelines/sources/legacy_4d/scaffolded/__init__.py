"""Tables scaffolded by `erp-sync scaffold --source legacy_4d`, one module each (its `SPEC`), reviewed and
committed: `SourceSystem.tables` lists them after the hand-written ones (sources/system.py `scaffolded_tables`)."""

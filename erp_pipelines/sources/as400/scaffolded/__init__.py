"""Tables scaffolded by `erp-sync scaffold --source as400`, one module each (its `SPEC`), reviewed and
committed: `SourceSystem.tables` lists them after the hand-written ones (sources/system.py `scaffolded_tables`)."""

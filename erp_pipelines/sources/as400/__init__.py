"""IBM i (AS400, Db2 for i) source: read-only ODBC access to whitelisted tables."""

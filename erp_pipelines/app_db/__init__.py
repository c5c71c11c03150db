"""The application database: table definitions (from the catalog) and the audit tables."""

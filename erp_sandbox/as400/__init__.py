"""The AS400 (Db2 for i) stand-in: a PostgreSQL database whose schemas play IBM i libraries."""

"""Storage backends: the ledger (SQLite embedded default, PostgreSQL shared) and the
budget stores. Each backend module imports its driver lazily, so importing this package
costs nothing."""

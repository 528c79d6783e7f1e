"""The controller's SQL, one module a table; store.py's SqliteStore holds them all."""

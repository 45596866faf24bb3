"""The DuckDB catalog: the only code that opens the database (schema, migrations, queries)."""

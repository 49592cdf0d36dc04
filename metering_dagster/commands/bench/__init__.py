"""`metering bench`: generated usage at volume through the real pipeline, against the DuckDB floor."""

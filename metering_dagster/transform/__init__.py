"""The Python side of the dbt project: when its incremental models must be rebuilt from all landed lines."""

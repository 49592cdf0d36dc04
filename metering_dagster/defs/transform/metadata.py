"""Each dbt model's materialization carries its column schema (names, warehouse types, descriptions from the
yml) and, for a table, its row count.

dagster-dbt's `fetch_column_metadata()` / `fetch_row_counts()` would read them through dbt's adapter in this
process, which the pipeline does not load (defs/transform/resource.py), and on DuckDB only after dbt exits.
Instead a post-hook of every model (dbt_project/macros/relation_metadata.sql) logs them from inside dbt, and
this stream attaches each to its model's materialization as dbt reports it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation

LOG_PREFIX = "dagster-table-metadata "


def table_metadata(logged: Mapping[str, Any], model: Mapping[str, Any]) -> dict[str, Any]:
    """The column schema and row count that a model's post-hook logged, with the yml's column descriptions."""
    described = {name.lower(): column.get("description") or None for name, column in model.get("columns", {}).items()}
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(name=name, type=data_type, description=described.get(name.lower()))
            for name, data_type in logged["columns"]
        ]
    )
    row_count = logged.get("row_count")
    return {"dagster/column_schema": schema, **({} if row_count is None else {"dagster/row_count": row_count})}


def stream_with_table_metadata(invocation: DbtCliInvocation) -> Iterator[Any]:
    """`invocation.stream()`, each model's Output with the table metadata its post-hook logged."""
    logged: dict[str, dict[str, Any]] = {}
    for raw in invocation.stream_raw_events():
        info = raw.raw_event["info"]
        unique_id = raw.raw_event["data"].get("node_info", {}).get("unique_id")
        if info["name"] == "JinjaLogInfo" and info["msg"].startswith(LOG_PREFIX) and unique_id:
            logged[unique_id] = json.loads(info["msg"][len(LOG_PREFIX) :])
            continue
        for event in raw.to_default_asset_events(
            manifest=invocation.manifest,
            dagster_dbt_translator=invocation.dagster_dbt_translator,
            context=invocation.context,
            target_path=invocation.target_path,
            project=invocation.project,
        ):
            if isinstance(event, dg.Output) and unique_id in logged:
                model = invocation.manifest["nodes"][unique_id]
                event = event.with_metadata({**event.metadata, **table_metadata(logged.pop(unique_id), model)})
            yield event

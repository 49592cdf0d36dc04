"""How dbt's nodes appear in Dagster: models grouped by layer, every dbt test a described asset check."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

LAYERS = ("staging", "intermediate", "marts")


class MeteringDbtTranslator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        """The model's layer, its folder under models/ (the fqn is project, folder, ..., model name)."""
        fqn = dbt_resource_props.get("fqn") or []
        if dbt_resource_props.get("resource_type") == "model" and len(fqn) > 2 and fqn[1] in LAYERS:
            return fqn[1]
        return super().get_group_name(dbt_resource_props)

    def get_asset_check_spec(self, asset_spec, manifest, unique_id, project) -> dg.AssetCheckSpec | None:
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None or spec.description:
            return spec
        return spec._replace(description=describe_test(manifest["nodes"][unique_id], manifest))


def describe_test(test: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    """The test's own `description:` from the yml, else what its generic test checks, in words."""
    if test.get("description"):
        return " ".join(test["description"].split())
    metadata = test.get("test_metadata") or {}
    kwargs = metadata.get("kwargs") or {}
    name = metadata.get("name") or test.get("name", "")
    tested = test.get("attached_node") or next(iter((test.get("depends_on") or {}).get("nodes") or []), "")
    node = manifest["nodes"].get(tested) or manifest["sources"].get(tested) or {}
    relation = ".".join(filter(None, (node.get("source_name"), node.get("name")))) or tested
    column = kwargs.get("column_name") or test.get("column_name")
    if name == "not_null":
        text = f"No row of {relation} has a NULL {column}"
    elif name == "not_null_columns":
        text = f"No row of {relation} has a NULL in {', '.join(kwargs.get('columns', []))}"
    elif name == "unique":
        text = f"No two rows of {relation} have the same {column}"
    elif name == "primary_key":
        text = f"{column} identifies each row of {relation}: never NULL, never repeated"
    elif name == "accepted_values":
        text = f"{column} of {relation} is one of: {', '.join(map(str, kwargs.get('values', [])))}"
    elif name == "relationships":
        to = str(kwargs.get("to", "")).removeprefix("ref(").removeprefix("source(").rstrip(")").replace("'", "")
        text = f"Every {column} of {relation} is a {kwargs.get('field')} of {to}"
    else:
        text = f"dbt test {test.get('name', name)} on {relation}"
    where = (test.get("config") or {}).get("where")
    return text + (" (rows not tested by an earlier run)" if where and "__tested_through__" in where else "") + "."


translator = MeteringDbtTranslator(
    settings=DagsterDbtTranslatorSettings(
        enable_asset_checks=True,
        # Several tables of one Python asset (e.g. contract.*) are sources that share its key.
        enable_duplicate_source_asset_keys=True,
    )
)

"""Shared vocabularies (invoice statuses, quarantine reasons, aggregations) are defined once, in
dbt_project.yml's vars: every list of them written in the Python or the SQL says the same."""

from __future__ import annotations

import re

import yaml

from metering_dagster import vocabulary

from .conftest import DBT_PROJECT, REPO

# A literal list of two or more quoted words, as Python and SQL write them: ('open', 'paid') or ["a", "b"].
QUOTED_LIST = re.compile(r"""[(\[]\s*(?:(['"])[a-z_]+\1\s*,\s*)+(['"])[a-z_]+\2\s*,?\s*[)\]]""")


def families() -> dict[str, list[tuple[str, ...]]]:
    """Each vocabulary family and the lists it may be written as."""
    return {
        "invoice statuses": [
            vocabulary.finalized_invoice_statuses(),
            vocabulary.billed_invoice_statuses(),
        ],
        "quarantine reasons": [vocabulary.quarantine_reasons()],
        "aggregations": [vocabulary.aggregations(), vocabulary.additive_aggregations()],
    }


def family_of(words: tuple[str, ...]) -> str | None:
    """The family a list of words is written from: all its words are the family's, and it names at least
    three of them or is one of its lists (two words such as ('count', 'unique_count') are another matter)."""
    for name, lists in families().items():
        known = {word for vocab in lists for word in vocab}
        if set(words) <= known and (len(words) >= 3 or any(set(words) == set(vocab) for vocab in lists)):
            return name
    return None


def written_lists() -> list[tuple[str, tuple[str, ...]]]:
    """(file:line, words) of every literal word list in the package's Python and the dbt project's SQL and YAML."""
    found = []
    sources = [
        *(REPO / "metering_dagster").rglob("*.py"),
        *DBT_PROJECT.glob("models/**/*.sql"),
        *DBT_PROJECT.glob("macros/**/*.sql"),
        *DBT_PROJECT.glob("tests/**/*.sql"),
    ]
    for path in sources:
        text = path.read_text()
        for match in QUOTED_LIST.finditer(text):
            words = tuple(re.findall(r"""['"]([a-z_]+)['"]""", match.group(0)))
            found.append(
                (
                    f"{path.relative_to(REPO)}:{text.count(chr(10), 0, match.start()) + 1}",
                    words,
                )
            )
    for path in DBT_PROJECT.glob("models/**/*.yml"):
        found += [(f"{path.relative_to(REPO)}", words) for words in _yaml_word_lists(yaml.safe_load(path.read_text()))]
    return found


def _yaml_word_lists(node) -> list[tuple[str, ...]]:
    if isinstance(node, dict):
        return [words for value in node.values() for words in _yaml_word_lists(value)]
    if isinstance(node, list):
        if len(node) >= 2 and all(isinstance(item, str) and re.fullmatch("[a-z_]+", item) for item in node):
            return [tuple(node)]
        return [words for item in node for words in _yaml_word_lists(item)]
    return []


def test_every_written_vocabulary_is_one_of_its_definitions():
    disagreeing = []
    for where, words in written_lists():
        family = family_of(words)
        if family is not None and set(words) not in [set(vocab) for vocab in families()[family]]:
            disagreeing.append(f"{where}: {family} {words}")
    assert disagreeing == [], "write these as the vocabulary of dbt_project.yml (metering_dagster/vocabulary.py)"


def test_python_reads_the_vars_the_sql_reads():
    project_vars = yaml.safe_load((DBT_PROJECT / "dbt_project.yml").read_text())["vars"]
    assert vocabulary.finalized_invoice_statuses() == tuple(project_vars["finalized_invoice_statuses"])
    assert vocabulary.quarantine_reasons() == tuple(project_vars["quarantine_reasons"])
    # Stripe: a finalized invoice is open, paid, uncollectible or void; a void one bills nothing.
    assert set(vocabulary.finalized_invoice_statuses()) == {
        "open",
        "paid",
        "uncollectible",
        "void",
    }
    assert set(vocabulary.billed_invoice_statuses()) == set(vocabulary.finalized_invoice_statuses()) - {"void"}
    assert set(vocabulary.additive_aggregations()) < set(vocabulary.aggregations())


def test_dbt_tests_accept_the_vocabularies(dbt):
    """The accepted_values tests take the vars (rendered when the test runs; a build with a line of every reason
    passes them in test_dbt_models): what dbt accepts is what Python knows."""
    accepted = {
        (
            node.attached_node.split(".")[-1],
            node.column_name,
        ): node.test_metadata.kwargs["values"]
        for node in dbt.runner.manifest.nodes.values()
        if node.resource_type == "test"
        and getattr(node, "test_metadata", None)
        and node.test_metadata.name == "accepted_values"
    }
    assert accepted[("int_usage_lines_validated", "quarantine_reason")] == "{{ var('quarantine_reasons') }}"
    assert accepted[("rpt_quarantined_events", "reason")] == "{{ var('quarantine_reasons') }}"
    assert accepted[("stg_contract__meters", "aggregation")] == "{{ var('aggregations') }}"


def test_a_second_copy_that_drifts_is_found():
    """The scan finds a copy of a vocabulary and tells a drifted one from a right one."""
    assert family_of(("open", "paid", "uncollectible")) == "invoice statuses"
    assert family_of(("open", "paid")) is None  # two words that are neither list: not a use of the vocabulary
    assert family_of(("count", "unique_count")) is None
    assert QUOTED_LIST.search("x in ('open', 'paid',\n 'void')")
    assert family_of(("sum", "count", "max")) == "aggregations"


def test_the_readme_documents_every_quarantine_reason_and_aggregation():
    readme = (REPO / "README.md").read_text()
    undocumented = [
        word for word in (*vocabulary.quarantine_reasons(), *vocabulary.aggregations()) if f"`{word}`" not in readme
    ]
    assert undocumented == []

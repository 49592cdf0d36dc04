"""The reader copy: the whole warehouse as the last run left it, opened read-only, never the warehouse itself."""

from __future__ import annotations

import duckdb
import pytest

from metering_dagster.serving.reader_copy import (
    ReaderCopyMissing,
    open_reader,
    publish_reader_copy,
    reader_path,
)
from metering_dagster.settings import load_settings


def test_the_copy_holds_what_the_run_wrote_and_opens_while_the_run_still_writes(metering_env):
    settings = load_settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    run = duckdb.connect(str(settings.warehouse_path))
    run.execute("create schema ops")
    # Small writes stay in the write-ahead log until a checkpoint: a bare file copy would miss them.
    run.execute("create table ops.figures as select 7::decimal(38, 12) as amount")
    publish_reader_copy(run, settings)
    run.execute("update ops.figures set amount = 8")  # the run goes on writing; the copy keeps what was published

    reader = open_reader(settings)
    try:
        assert reader.execute("select amount from ops.figures").fetchall() == [(7,)]
        with pytest.raises(duckdb.Error):
            reader.execute("delete from ops.figures")  # read-only
    finally:
        reader.close()
    run.close()
    assert reader_path(settings).parent == settings.state_dir
    assert not reader_path(settings).with_name("reader.duckdb.tmp").exists()


def test_no_published_copy_is_one_line_saying_what_to_do(metering_env):
    with pytest.raises(ReaderCopyMissing) as missing:
        open_reader(load_settings())
    assert "\n" not in str(missing.value) and "metering run" in str(missing.value)

"""How long each console page takes to answer, over HTTP, for a state folder a run has published (the benchmark).

    from metering_dagster.serving.console.timing import time_pages
    time_pages(Path("state"))  # {"customers": 0.04, "customers_first": 0.2, "customer": 0.02, ...} seconds

The server is `metering serve`'s app in this process on a free port, with a token made for the measurement; the
customer measured is the one with the most events (the heaviest pages), the period its latest, the line
that period's meter with the most events. Each page's first request is
measured apart (`<page>_first`: the first after start also opens the published files and loads the chart
library), then the slowest of `repeat` more.
"""

from __future__ import annotations

import secrets
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import duckdb
import uvicorn

from metering_dagster.serving.api import create_app
from metering_dagster.settings import Settings, duckdb_config


def _heaviest_line(analytics: Path) -> tuple[str, str, str]:
    con = duckdb.connect(str(analytics), read_only=True, config=duckdb_config())
    try:
        con.execute("set TimeZone = 'UTC'")
        customer, period, meter = con.execute(
            """select customer_id, strftime(period_start, '%Y-%m-%dT%H:%M:%SZ'), meter
               from marts.fct_usage_by_period
               order by sum(event_count) over (partition by customer_id) desc, period_start desc, event_count desc
               limit 1"""
        ).fetchone()
    finally:
        con.close()
    return customer, period, meter


def page_paths(customer: str, period: str, meter: str) -> dict[str, str]:
    c = quote(customer, safe="")
    line = f"/customers/{c}/periods/{period}/meters/{quote(meter, safe='')}"
    return {
        "customers": "/",
        "customer": f"/customers/{c}",
        "line": line,
        "line_csv": f"{line}/events.csv",
        "line_parquet": f"{line}/events.parquet",
        "statement": f"/customers/{c}/periods/{period}/statement",
        "statement_pdf": f"/customers/{c}/periods/{period}/statement.pdf",
    }


def _get(url: str, token: str) -> float:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")
    return time.perf_counter() - started


def time_pages(state_dir: Path, repeat: int = 3) -> dict[str, float]:
    """Seconds per page (the slowest of `repeat` after its first request, measured apart) for the state folder."""
    settings = Settings(state_dir=state_dir, raw_dir=state_dir / "raw", contract_path=state_dir / "metering.yml")
    token = secrets.token_urlsafe(32)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, token), host="127.0.0.1", port=0, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the console's server did not start")
        time.sleep(0.01)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    try:
        paths = page_paths(*_heaviest_line(settings.analytics_path))
        timings = {}
        for name, path in paths.items():
            timings[f"{name}_first"] = _get(base + path, token)
            timings[name] = max(_get(base + path, token) for _ in range(repeat))
        return timings
    finally:
        server.should_exit = True
        thread.join(timeout=10)

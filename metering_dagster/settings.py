"""Where things live and how the pipeline is tuned: the one place that reads the environment.

Every path has a default that points at the demo shipped under `data/`, so a
fresh clone runs without configuration. The Stripe key is read here too (`stripe_credentials`), handed to the
Stripe client (billing/client.py) and to Dagster as a `dg.EnvVar` (defs/billing/resources.py), never stored.
Nothing here runs at import time; a child process gets its environment from `subprocess_environment`.

Each tuning variable (`METERING_DUCKDB_THREADS` ...) is parsed by one function below; a value
that cannot be used raises `SettingsError` naming the variable, the form expected and the value
given (escaped, cut short). `load_settings` checks them all, so a command stops at its start
with every bad value listed rather than fail somewhere in a run with a traceback.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO_ROOT / "data" / "demo"


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    raw_dir: Path
    contract_path: Path

    @property
    def warehouse_path(self) -> Path:
        return self.state_dir / "warehouse.duckdb"

    @property
    def analytics_path(self) -> Path:
        return self.state_dir / "analytics.duckdb"

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.state_dir / "dagster_home")

    @property
    def emulator_state_path(self) -> Path:
        return self.state_dir / "stripe_emulator.sqlite"


class SettingsError(ValueError):
    """Environment variables with values that cannot be used: each named, with the form expected."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def _value(name: str) -> str | None:
    """The variable's value without surrounding whitespace; None when unset or empty (the default applies)."""
    value = os.environ.get(name, "").strip()
    return value or None


def _refuse(name: str, expected: str) -> SettingsError:
    value = os.environ.get(name, "")
    shown = ascii(value) if len(value) <= 40 else ascii(value[:40])[:-1] + "…'"
    return SettingsError([f"{name} must be {expected}, got {shown}"])


def _number(name: str, default: float, *, whole: bool, minimum: float, maximum: float | None = None) -> float:
    text = _value(name)
    if text is None:
        return default
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < minimum or (maximum is not None and value > maximum):
        kind = "a whole number" if whole else "a number"
        bounds = f"from {minimum:g} to {maximum:g}" if maximum is not None else f"of at least {minimum:g}"
        raise _refuse(name, f"{kind} {bounds}")
    return value


def duckdb_threads() -> int:
    return int(_number("METERING_DUCKDB_THREADS", 2, whole=True, minimum=1, maximum=1024))


_MEMORY = re.compile(r"[0-9]+(\.[0-9]+)?\s*([KMGT]i?B|[KMGT]|B)", re.IGNORECASE)


def duckdb_memory_limit() -> str:
    """A size DuckDB reads, e.g. 1GB, 512MB, 2GiB (dbt's profile reads the same variable)."""
    text = _value("METERING_DUCKDB_MEMORY_LIMIT")
    if text is None:
        return "1GB"
    if not _MEMORY.fullmatch(text) or not float(re.match(r"[0-9.]+", text).group()) > 0:
        raise _refuse("METERING_DUCKDB_MEMORY_LIMIT", "a size such as 1GB, 512MB or 2GiB")
    return text


def duckdb_config() -> dict[str, object]:
    """Threads and memory ceiling of every DuckDB connection the pipeline opens (dbt's profile reads the same
    variables), read when a connection is opened: importing a module reads nothing."""
    return {"threads": duckdb_threads(), "memory_limit": duckdb_memory_limit()}


def stripe_verify_hours() -> float:
    return _number("METERING_STRIPE_VERIFY_HOURS", 24, whole=False, minimum=0)


def stripe_concurrency() -> int:
    return int(_number("METERING_STRIPE_CONCURRENCY", 4, whole=True, minimum=1, maximum=64))


def lock_wait_seconds(default: float) -> float:
    return _number("METERING_LOCK_WAIT_SECONDS", default, whole=False, minimum=0)


def warehouse_wait_seconds() -> float:
    return _number("METERING_WAREHOUSE_WAIT_SECONDS", 0, whole=False, minimum=0)


def landing_settle_seconds(default: float) -> float:
    return _number("METERING_LANDING_SETTLE_SECONDS", default, whole=False, minimum=0)


def dead_letter_max_age_seconds(default: int) -> int:
    return int(_number("METERING_DEAD_LETTER_MAX_AGE_SECONDS", default, whole=True, minimum=1))


def metering_env() -> str | None:
    """METERING_ENV: `production` allows a live key (billing/client.py); any other word is not production."""
    text = _value("METERING_ENV")
    if text is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", text):
        raise _refuse("METERING_ENV", "a word such as production or staging")
    return text


def automation_enabled() -> bool:
    """METERING_AUTOMATION: `on` starts every schedule and sensor when the code location loads (production);
    `off`, the default, leaves them stopped until someone turns each on in the Dagster UI."""
    text = _value("METERING_AUTOMATION")
    if text is None or text.lower() == "off":
        return False
    if text.lower() == "on":
        return True
    raise _refuse("METERING_AUTOMATION", "on or off")


# Every tuning variable's parser (the defaults given here do not matter): `check_tuning` runs them all.
TUNING: tuple[Callable[[], object], ...] = (
    duckdb_threads,
    duckdb_memory_limit,
    stripe_verify_hours,
    stripe_concurrency,
    lambda: lock_wait_seconds(0),
    warehouse_wait_seconds,
    lambda: landing_settle_seconds(0),
    lambda: dead_letter_max_age_seconds(1),
    metering_env,
    automation_enabled,
)


def check_tuning() -> None:
    """Raise one SettingsError listing every tuning variable whose value cannot be used."""
    problems = []
    for parse in TUNING:
        try:
            parse()
        except SettingsError as error:
            problems += error.problems
    if problems:
        raise SettingsError(problems)


def load_settings() -> Settings:
    """Read METERING_STATE_DIR, METERING_RAW_DIR and METERING_CONTRACT (with demo defaults), after checking
    every tuning variable (`SettingsError`)."""
    check_tuning()
    state_dir = Path(os.environ.get("METERING_STATE_DIR") or REPO_ROOT / "state").resolve()
    raw_dir = Path(os.environ.get("METERING_RAW_DIR") or DEMO_DIR / "raw").resolve()
    contract = Path(os.environ.get("METERING_CONTRACT") or DEMO_DIR / "metering.yml").resolve()
    return Settings(state_dir=state_dir, raw_dir=raw_dir, contract_path=contract)


def export_environment(settings: Settings | None = None, *, dagster_home: Path | None = None) -> Settings:
    """Set METERING_* (and DAGSTER_HOME when given) to the resolved paths, for the processes a command starts:
    the Dagster run's steps and dbt (which runs in dbt_project/, where a relative path would name another
    folder, and reads METERING_STATE_DIR in profiles.yml) then use the same warehouse as the command."""
    settings = settings or load_settings()
    os.environ["METERING_STATE_DIR"] = str(settings.state_dir)
    os.environ["METERING_RAW_DIR"] = str(settings.raw_dir)
    os.environ["METERING_CONTRACT"] = str(settings.contract_path)
    if dagster_home is not None:
        os.environ["DAGSTER_HOME"] = str(dagster_home)
    return settings


@dataclass(frozen=True)
class StripeCredentials:
    """Which Stripe to talk to: `api_key` unset means the bundled emulator. The key never shows in a repr."""

    api_key: str | None = field(default=None, repr=False)
    api_base: str | None = None
    metering_env: str | None = None


def stripe_credentials(environ: Mapping[str, str] | None = None) -> StripeCredentials:
    """STRIPE_API_KEY (as given: billing/client.py refuses a key with stray characters, naming them),
    STRIPE_API_BASE and METERING_ENV, from `environ` (a test's) or this process's environment."""
    env = os.environ if environ is None else environ
    metering = (env.get("METERING_ENV") or "").strip() or None
    return StripeCredentials(
        api_key=env.get("STRIPE_API_KEY") or None, api_base=env.get("STRIPE_API_BASE") or None, metering_env=metering
    )


STRIPE_VARIABLES = ("STRIPE_API_KEY", "STRIPE_API_BASE")


def stripe_variables_set(environ: Mapping[str, str] | None = None) -> list[str]:
    """The Stripe variables that are set (non-empty): the demo refuses to run with any."""
    env = os.environ if environ is None else environ
    return [name for name in STRIPE_VARIABLES if env.get(name)]


# The entitlements API (`metering serve`): the bearer token every caller must present.
API_TOKEN = "METERING_API_TOKEN"
API_TOKEN_MIN_LENGTH = 16


def api_token() -> str | None:
    """METERING_API_TOKEN, None when unset (`metering serve` then refuses to start). A token too short to guess
    or one a header cannot carry raises SettingsError, which never quotes it."""
    token = _value(API_TOKEN)
    if token is None:
        return None
    if len(token) < API_TOKEN_MIN_LENGTH or not all("!" <= c <= "~" for c in token):
        raise SettingsError(
            [
                f"{API_TOKEN} must be at least {API_TOKEN_MIN_LENGTH} printable ASCII characters without spaces "
                "(python -c 'import secrets; print(secrets.token_urlsafe(32))' makes one)"
            ]
        )
    return token


def dagster_dev_cli() -> bool:
    """True inside `dagster dev` (it sets DAGSTER_IS_DEV_CLI)."""
    return bool(os.environ.get("DAGSTER_IS_DEV_CLI"))


def subprocess_environment(**overrides: str) -> dict[str, str]:
    """The environment for a child process (dbt in a scratch copy ...): this one's, with `overrides`."""
    return {**os.environ, **overrides}


# Budget alert webhooks (budgets/webhooks.py): where alerts are sent, the signing secret and the retries of a run.
WEBHOOK_URL = "METERING_WEBHOOK_URL"
WEBHOOK_SECRET = "METERING_WEBHOOK_SECRET"
WEBHOOK_SECRET_PREFIX = "whsec_"


@dataclass(frozen=True)
class WebhookSettings:
    """`url` unset: alerts are recorded, not sent. The secret never shows in a repr."""

    url: str | None
    secret: str | None = field(default=None, repr=False)
    attempts: int = 4
    backoff_seconds: float = 1.0


def webhook_url_problem(url: str) -> str | None:
    """Why `url` cannot receive webhooks (only http and https with a host), None when it can."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError:
        return "not a URL"
    if parts.scheme not in ("http", "https"):
        return "not an http(s) URL"
    if not parts.hostname:
        return "a URL without a host"
    if any(c.isspace() for c in url):
        return "a URL with spaces"
    return None


def webhook_secret_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64 after an optional `whsec_` prefix. The error never
    quotes the secret."""
    import base64
    import binascii

    text = secret.strip().removeprefix(WEBHOOK_SECRET_PREFIX)
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise SettingsError([f"{WEBHOOK_SECRET} must be base64 (optionally after {WEBHOOK_SECRET_PREFIX})"])
    return key


def webhook_receiver_problems(url: str, secret: str | None) -> list[str]:
    """What stops alerts being sent to `url` signed with `secret`: a URL that is not http(s), no secret, a secret
    that is not base64. Neither value is quoted (the URL may carry a token of the receiver)."""
    problems = []
    problem = webhook_url_problem(url)
    if problem:
        problems.append(f"{WEBHOOK_URL} must be an http:// or https:// URL with a host, got {problem}")
    if not secret:
        problems.append(f"{WEBHOOK_SECRET} must be set when {WEBHOOK_URL} is (the key that signs each alert)")
    else:
        try:
            webhook_secret_key(secret)
        except SettingsError as error:
            problems += error.problems
    return problems


def webhook_settings() -> WebhookSettings:
    """METERING_WEBHOOK_URL (http or https), METERING_WEBHOOK_SECRET (required with a URL),
    METERING_WEBHOOK_ATTEMPTS (attempts of an alert per run, default 4) and METERING_WEBHOOK_BACKOFF_SECONDS (the
    first retry's delay, doubled each retry, default 1)."""
    problems = []
    attempts, backoff = 4, 1.0
    try:
        attempts = int(_number("METERING_WEBHOOK_ATTEMPTS", 4, whole=True, minimum=1, maximum=20))
    except SettingsError as error:
        problems += error.problems
    try:
        backoff = _number("METERING_WEBHOOK_BACKOFF_SECONDS", 1, whole=False, minimum=0, maximum=3600)
    except SettingsError as error:
        problems += error.problems
    url, secret = _value(WEBHOOK_URL), _value(WEBHOOK_SECRET)
    if url is not None:
        problems += webhook_receiver_problems(url, secret)
    if problems:
        raise SettingsError(problems)
    return WebhookSettings(url=url, secret=secret, attempts=attempts, backoff_seconds=backoff)


TUNING += (webhook_settings,)


# The engine of the dbt steps (README "When one machine is not enough"): DuckDB in the warehouse file, or Apache
# Spark reading the landed lines as Parquet files under METERING_SPARK_SOURCES.
ENGINES = ("duckdb", "spark")


def metering_engine() -> str:
    """METERING_ENGINE: `duckdb` (the default) or `spark` (dbt's `spark` target; the marts it builds are copied
    into the warehouse file, where every later step reads them)."""
    text = _value("METERING_ENGINE")
    if text is None:
        return "duckdb"
    if text.lower() not in ENGINES:
        raise _refuse("METERING_ENGINE", " or ".join(ENGINES))
    return text.lower()


def spark_master() -> str:
    """METERING_SPARK_MASTER, Spark's master URL (the profile reads it): local[*] by default, spark://host:7077,
    yarn, k8s://... on a cluster."""
    text = _value("METERING_SPARK_MASTER")
    if text is not None and not re.fullmatch(r"[a-z][a-z0-9+.-]*(\[[^\s]*\]|:[^\s]*)?", text):
        raise _refuse("METERING_SPARK_MASTER", "a Spark master URL such as local[*], spark://host:7077 or yarn")
    return text or "local[*]"


def spark_sources_location(state_dir: Path) -> str:
    """METERING_SPARK_SOURCES: where the dbt sources are written as Parquet for Spark (a folder, or an object-store
    URL such as s3://bucket/metering that the writer and Spark can both reach); default <state folder>/spark/sources."""
    text = _value("METERING_SPARK_SOURCES")
    if text is None:
        return str(state_dir / "spark" / "sources")
    if "://" in text or text.startswith("/"):
        return text.rstrip("/")
    return str(Path(text).resolve())


def export_spark_sources(state_dir: Path) -> str:
    """Set METERING_SPARK_SOURCES to the resolved location for dbt (which runs in dbt_project/, where a relative
    folder would name another one) and return it."""
    location = spark_sources_location(state_dir)
    os.environ["METERING_SPARK_SOURCES"] = location
    return location


TUNING += (metering_engine, spark_master)

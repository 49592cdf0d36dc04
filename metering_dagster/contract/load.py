"""Load and validate `metering.yml`: every problem is collected, each naming the file and the field."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ..vocabulary import aggregations
from .model import (
    ANY_CUSTOMER,
    FAIL_MODES,
    ON_EXCEED,
    PRICE_MODELS,
    Budget,
    Contract,
    ContractError,
    Customer,
    Entitlements,
    Meter,
    MeterFilter,
    Package,
    Price,
    Tier,
)
from .read import decode, parse, shown

METER_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*\Z")
FIELD_PATH_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*\Z")
CURRENCY_RE = re.compile(r"^[a-z]{3}\Z")
DURATION_RE = re.compile(r"^([0-9]+)\s*([smhd])\Z")
DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
RFC3339_RE = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])\Z"
)
# What Stripe metadata, HTTP headers (our Idempotency-Keys carry it) and file names can all carry:
# printable ASCII, no space at either end.
CUSTOMER_ID_RE = re.compile(r"^[!-~]([ -~]*[!-~])?\Z")
FIELD_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}\Z")
DECIMAL_RE = re.compile(r"^[0-9]+(\.[0-9]+)?\Z")
MAX_DECIMAL_PLACES = 12  # the warehouse stores amounts as DECIMAL(38,12)


class _Errors:
    def __init__(self, file: str):
        self.file = file
        self.items: list[str] = []

    def add(self, field: str, message: str) -> None:
        self.items.append(f"{self.file}: {field}: {message}")


_LOADED: dict[Path, tuple[bytes, Contract]] = {}  # path -> (bytes, contract): a run's steps share one parse


def load_contract(path: str | Path) -> Contract:
    """Read and validate a metering contract; raise ContractError listing every problem."""
    path = Path(path)
    errors = _Errors(path.name)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ContractError([f"{path.name}: cannot read: {exc.strerror or exc}"]) from exc
    cached = _LOADED.get(path.resolve())
    if cached is not None and cached[0] == data:  # same bytes, same contract (it is immutable)
        return cached[1]
    doc = parse(decode(data, path.name), path.name)
    contract = _contract(doc, path, errors)
    if errors.items:
        raise ContractError(errors.items)
    _LOADED.clear()
    _LOADED[path.resolve()] = (data, contract)
    return contract


def _contract(doc: Any, path: Path, e: _Errors) -> Contract | None:
    if not isinstance(doc, dict):
        e.add("(top level)", "must be a mapping")
        return None
    _unknown_keys(
        doc,
        {
            "environment",
            "currency",
            "grace_period",
            "test_clock_start",
            "meters",
            "customers",
            "budgets",
            "entitlements",
        },
        "",
        e,
    )
    environment = doc.get("environment")
    if environment not in ("test", "live"):
        e.add("environment", f"must be test or live, got {shown(environment)}")
    currency = doc.get("currency")
    if not isinstance(currency, str) or not CURRENCY_RE.match(currency.lower()):
        e.add("currency", f"must be a three-letter ISO currency code, got {shown(currency)}")
        currency = None
    else:
        currency = currency.lower()
    grace = _duration(doc.get("grace_period", "0s"), "grace_period", e)
    test_clock_start = None
    if doc.get("test_clock_start") is not None:
        test_clock_start = _timestamp(doc["test_clock_start"], "test_clock_start", e)

    meters = []
    raw_meters = doc.get("meters")
    if not isinstance(raw_meters, list) or not raw_meters:
        e.add("meters", "must be a non-empty list")
        raw_meters = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_meters):
        meter = _meter(raw, f"meters[{i}]", currency or "usd", e)
        if meter is None:
            continue
        if not isinstance(meter.key, str):  # already reported by _meter; not hashable (found by the fuzz test)
            meters.append(meter)
            continue
        if meter.key in seen:
            e.add(f"meters[{i}].key", f"duplicate meter key {shown(meter.key)}")
        seen.add(meter.key)
        meters.append(meter)

    customers = []
    raw_customers = doc.get("customers")
    if not isinstance(raw_customers, list) or not raw_customers:
        e.add("customers", "must be a non-empty list")
        raw_customers = []
    seen = set()
    for i, raw in enumerate(raw_customers):
        customer = _customer(raw, f"customers[{i}]", e)
        cid = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(cid, str) and cid in seen:
            e.add(f"customers[{i}].id", f"duplicate customer id {shown(cid)}")
        if isinstance(cid, str):  # a non-string id is reported by _customer (found by the fuzz test)
            seen.add(cid)
        if customer is not None:
            customers.append(customer)

    # ids and keys of the wrong type are reported above; only strings can be named by a budget (fuzz test)
    budgets = _budgets(
        doc.get("budgets"),
        {m.key: m for m in meters if isinstance(m.key, str)},
        {c.id for c in customers if isinstance(c.id, str)},
        e,
    )
    entitlements = _entitlements(doc.get("entitlements"), e)

    if e.items:
        return None
    return Contract(
        source_path=path,
        environment=environment,
        currency=currency,
        grace_period_seconds=grace,
        meters=tuple(meters),
        customers=tuple(customers),
        test_clock_start=test_clock_start,
        budgets=budgets,
        entitlements=entitlements,
    )


def _budgets(raw: Any, meters: dict, customer_ids: set[str], e: _Errors) -> tuple[Budget, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        e.add("budgets", "must be a list")
        return ()
    budgets, seen = [], set()
    for i, item in enumerate(raw):
        at = f"budgets[{i}]"
        budget = _budget(item, at, meters, customer_ids, e)
        if budget is None:
            continue
        if (budget.key, budget.customer) in seen:
            e.add(at, f"duplicate budget {shown(budget.key)} for customer {shown(budget.customer)}")
        seen.add((budget.key, budget.customer))
        budgets.append(budget)
    return tuple(budgets)


def _budget(raw: Any, at: str, meters: dict, customer_ids: set[str], e: _Errors) -> Budget | None:
    if not isinstance(raw, dict):
        e.add(at, "must be a mapping {key, customer, spend | meter + quantity, thresholds, on_exceed}")
        return None
    _unknown_keys(raw, {"key", "customer", "spend", "meter", "quantity", "thresholds", "on_exceed"}, at, e)
    before = len(e.items)
    key = raw.get("key")
    if not isinstance(key, str) or not METER_KEY_RE.match(key) or len(key) > 100:
        e.add(f"{at}.key", f"must match [a-z][a-z0-9_]* (at most 100 chars), got {shown(key)}")
    customer = raw.get("customer")
    if not isinstance(customer, str) or (customer != ANY_CUSTOMER and customer not in customer_ids):
        e.add(f"{at}.customer", f'must be a customer id of this contract or "*", got {shown(customer)}')
    meter = raw.get("meter")
    if "spend" in raw:
        kind = "spend"
        if "meter" in raw or "quantity" in raw:
            e.add(at, "has spend and meter/quantity: a budget limits either spend or one meter's quantity")
        limit = _amount(raw.get("spend"), f"{at}.spend", e)
    elif "meter" in raw or "quantity" in raw:
        kind = "quantity"
        if not isinstance(meter, str) or meter not in meters:
            e.add(f"{at}.meter", f"must be a meter key of this contract, got {shown(meter)}")
        limit = _amount(raw.get("quantity"), f"{at}.quantity", e)
    else:
        e.add(at, 'needs spend (cents per period, e.g. "5000") or meter + quantity')
        return None
    if limit == 0:
        e.add(f"{at}.{kind if kind == 'spend' else 'quantity'}", "must be greater than 0")
    thresholds = raw.get("thresholds", [80, 100])
    if not isinstance(thresholds, list) or not thresholds:
        e.add(f"{at}.thresholds", f"must be a non-empty list of percentages like [80, 100], got {shown(thresholds)}")
        thresholds = []
    for j, t in enumerate(thresholds):
        if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= 10000:
            e.add(f"{at}.thresholds[{j}]", f"must be a whole percentage from 1 to 10000, got {shown(t)}")
    if len({t for t in thresholds if isinstance(t, int)}) != len(thresholds):
        e.add(f"{at}.thresholds", f"must not repeat a percentage, got {shown(thresholds)}")
    on_exceed = raw.get("on_exceed", "notify")
    if on_exceed not in ON_EXCEED:
        e.add(f"{at}.on_exceed", f"must be one of {', '.join(ON_EXCEED)}, got {shown(on_exceed)}")
    if (
        on_exceed == "block"
        and isinstance(thresholds, list)
        and not any(isinstance(t, int) and not isinstance(t, bool) and t >= 100 for t in thresholds)
    ):
        e.add(f"{at}.thresholds", "a block budget needs a threshold of 100 or more (access is refused at 100%)")
    if len(e.items) > before:
        return None
    return Budget(
        key=key,
        customer=customer,
        kind=kind,
        meter=meter if kind == "quantity" else None,
        limit=limit,
        thresholds=tuple(sorted(thresholds)),
        on_exceed=on_exceed,
    )


def _entitlements(raw: Any, e: _Errors) -> Entitlements:
    if raw is None:
        return Entitlements()
    if not isinstance(raw, dict):
        e.add("entitlements", "must be a mapping {fail_mode, max_staleness}")
        return Entitlements()
    _unknown_keys(raw, {"fail_mode", "max_staleness"}, "entitlements", e)
    fail_mode = raw.get("fail_mode", "open")
    if fail_mode not in FAIL_MODES:
        e.add("entitlements.fail_mode", f"must be one of {', '.join(FAIL_MODES)}, got {shown(fail_mode)}")
    before = len(e.items)
    staleness = _duration(raw.get("max_staleness", "15m"), "entitlements.max_staleness", e)
    if staleness == 0 and len(e.items) == before:
        e.add("entitlements.max_staleness", "must be longer than 0s")
    return Entitlements(fail_mode=fail_mode, max_staleness_seconds=staleness)


def _meter(raw: Any, at: str, currency: str, e: _Errors) -> Meter | None:
    if not isinstance(raw, dict):
        e.add(at, "must be a mapping")
        return None
    _unknown_keys(raw, {"key", "display_name", "action", "value", "aggregation", "filter", "unit", "price"}, at, e)
    key = raw.get("key")
    if not isinstance(key, str) or not METER_KEY_RE.match(key) or len(key) > 100:
        e.add(f"{at}.key", f"must match [a-z][a-z0-9_]* (at most 100 chars), got {shown(key)}")
    display_name = raw.get("display_name", key)
    if not isinstance(display_name, str) or not display_name or not display_name.isprintable():
        e.add(f"{at}.display_name", f"must be a non-empty string without control characters, got {shown(display_name)}")
    action = raw.get("action")
    if not isinstance(action, str) or not 1 <= len(action) <= 100:
        e.add(f"{at}.action", f"must be a string of 1-100 chars, got {shown(action)}")
    aggregation = raw.get("aggregation")
    if aggregation not in aggregations():
        e.add(f"{at}.aggregation", f"must be one of {', '.join(aggregations())}, got {shown(aggregation)}")
    value_path = raw.get("value")
    if aggregation == "count":
        if value_path is not None:
            e.add(f"{at}.value", "must be omitted for aggregation count (count takes no value)")
    elif not isinstance(value_path, str) or not FIELD_PATH_RE.match(value_path):
        e.add(f"{at}.value", f"must be a dotted field path like metadata.tokens, got {shown(value_path)}")
    unit = raw.get("unit")
    if unit is not None and (not isinstance(unit, str) or not unit.isprintable()):
        e.add(f"{at}.unit", f"must be a string without control characters, got {shown(unit)}")
    filters = _filters(raw.get("filter"), f"{at}.filter", e)
    price = _price(raw.get("price"), f"{at}.price", currency, e)
    if price is None:
        return None
    return Meter(
        key=key,
        display_name=display_name,
        action=action,
        value_path=value_path,
        aggregation=aggregation,
        unit=unit,
        price=price,
        filters=filters,
    )


def _filters(raw: Any, at: str, e: _Errors) -> tuple[MeterFilter, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not raw:
        e.add(at, "must be a non-empty mapping of field path -> list of allowed values")
        return ()
    out = []
    for field_path, values in raw.items():
        if not isinstance(field_path, str) or not FIELD_PATH_RE.match(field_path):
            e.add(f"{at}.{_field(field_path)}", "must be a dotted field path")
            continue
        if not isinstance(values, list) or not values:
            e.add(f"{at}.{_field(field_path)}", "must be a non-empty list of allowed values")
            continue
        allowed = []
        for j, v in enumerate(values):
            if isinstance(v, bool):
                allowed.append("true" if v else "false")
            elif isinstance(v, (str, int)):
                allowed.append(str(v))
            else:
                e.add(f"{at}.{_field(field_path)}[{j}]", f"must be a string, integer or boolean, got {shown(v)}")
        out.append(MeterFilter(field_path=field_path, allowed_values=tuple(allowed)))
    return tuple(out)


PRICE_KEYS = {
    "per_unit": {"unit_amount_decimal"},
    "package": {"package"},
    "graduated": {"tiers"},
    "volume": {"tiers"},
}


def _price(raw: Any, at: str, currency: str, e: _Errors) -> Price | None:
    if not isinstance(raw, dict):
        e.add(at, "must be a mapping with a model")
        return None
    model = raw.get("model")
    if model not in PRICE_MODELS:
        e.add(f"{at}.model", f"must be one of {', '.join(PRICE_MODELS)}, got {shown(model)}")
        return None
    allowed = PRICE_KEYS[model] | {"model"}
    for k in raw:
        if k not in allowed:
            e.add(f"{at}.{_field(k)}", f"not used by price model {model}")
    if model == "per_unit":
        unit = _amount(raw.get("unit_amount_decimal"), f"{at}.unit_amount_decimal", e)
        return Price(model=model, currency=currency, unit_amount_decimal=unit)
    if model == "package":
        pkg = raw.get("package")
        if not isinstance(pkg, dict):
            e.add(f"{at}.package", "must be a mapping {size, unit_amount_decimal, round}")
            return None
        _unknown_keys(pkg, {"size", "unit_amount_decimal", "round"}, f"{at}.package", e)
        size = pkg.get("size")
        if isinstance(size, str) and size.isdigit():
            size = int(size)
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            e.add(f"{at}.package.size", f"must be a positive integer, got {shown(size)}")
            size = 1
        rounding = pkg.get("round", "up")
        if rounding not in ("up", "down"):
            e.add(f"{at}.package.round", f"must be up or down, got {shown(rounding)}")
        unit = _amount(pkg.get("unit_amount_decimal"), f"{at}.package.unit_amount_decimal", e)
        return Price(model=model, currency=currency, package=Package(size, unit, rounding))
    tiers_raw = raw.get("tiers")
    if not isinstance(tiers_raw, list) or not tiers_raw:
        e.add(f"{at}.tiers", "must be a non-empty list")
        return None
    tiers = []
    previous: Decimal | None = Decimal(0)
    for j, t in enumerate(tiers_raw):
        tat = f"{at}.tiers[{j}]"
        if not isinstance(t, dict):
            e.add(tat, "must be a mapping {up_to, unit_amount_decimal, flat_amount_decimal}")
            continue
        _unknown_keys(t, {"up_to", "unit_amount_decimal", "flat_amount_decimal"}, tat, e)
        last = j == len(tiers_raw) - 1
        up_to_raw = t.get("up_to")
        up_to: Decimal | None
        if up_to_raw == "inf":
            up_to = None
            if not last:
                e.add(f"{tat}.up_to", "inf is allowed only on the last tier")
        else:
            up_to = _amount(up_to_raw, f"{tat}.up_to", e)
            if last:
                e.add(f"{tat}.up_to", f"the last tier must have up_to: inf, got {shown(up_to_raw)}")
            elif previous is not None and up_to <= previous:
                e.add(
                    f"{tat}.up_to",
                    f"must be greater than the previous tier's up_to ({previous}), got {shown(up_to_raw)}",
                )
            elif up_to == 0:
                e.add(f"{tat}.up_to", "must be greater than 0")
        if "unit_amount_decimal" not in t and "flat_amount_decimal" not in t:
            e.add(tat, "needs unit_amount_decimal or flat_amount_decimal")
        unit = _amount(t.get("unit_amount_decimal", "0"), f"{tat}.unit_amount_decimal", e)
        flat = _amount(t.get("flat_amount_decimal", "0"), f"{tat}.flat_amount_decimal", e)
        tiers.append(Tier(up_to=up_to, unit_amount_decimal=unit, flat_amount_decimal=flat))
        previous = up_to
    return Price(model=model, currency=currency, tiers=tuple(tiers))


def _amount(raw: Any, at: str, e: _Errors) -> Decimal:
    """A non-negative exact decimal: a string like "0.05" or an integer; never a float."""
    if raw is None:
        e.add(at, 'is required (a decimal string such as "0.05")')
        return Decimal(0)
    if isinstance(raw, bool) or isinstance(raw, float):
        e.add(at, f"must be a decimal string or integer, not {type(raw).__name__} {shown(raw)} (quote it)")
        return Decimal(0)
    text = str(raw).strip()
    if not DECIMAL_RE.match(text):
        e.add(at, f'must be a non-negative decimal such as "0.05", got {shown(raw)}')
        return Decimal(0)
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the regex already rules this out
        e.add(at, f"not a decimal: {shown(raw)}")
        return Decimal(0)
    if value and -value.normalize().as_tuple().exponent > MAX_DECIMAL_PLACES:
        e.add(at, f"at most {MAX_DECIMAL_PLACES} decimal places, got {shown(raw)}")
    if value >= Decimal(10) ** 26:
        e.add(at, f"too large: {shown(raw)}")
    return value


def _customer(raw: Any, at: str, e: _Errors) -> Customer | None:
    if not isinstance(raw, dict):
        e.add(at, "must be a mapping {id, billing_anchor, interval}")
        return None
    _unknown_keys(raw, {"id", "billing_anchor", "interval"}, at, e)
    cid = raw.get("id")
    if not isinstance(cid, str) or not 1 <= len(cid) <= 100:
        e.add(f"{at}.id", f"must be a string of 1-100 chars, got {shown(cid)}")
    elif cid == ANY_CUSTOMER:
        e.add(f"{at}.id", 'must not be "*": in budgets, "*" means every customer without a budget of its own')
    elif not CUSTOMER_ID_RE.match(cid):
        e.add(
            f"{at}.id",
            f"must be printable ASCII without a space at either end (it is sent to Stripe in HTTP "
            f"headers), got {shown(cid)}",
        )
    anchor = _timestamp(raw.get("billing_anchor"), f"{at}.billing_anchor", e)
    interval = raw.get("interval", "month")
    if interval != "month":
        e.add(f"{at}.interval", f"must be month, got {shown(interval)}")
    if anchor is None:
        return None
    return Customer(id=cid, billing_anchor=anchor, interval=interval)


def _timestamp(raw: Any, at: str, e: _Errors) -> datetime | None:
    if not isinstance(raw, str) or not RFC3339_RE.match(raw):
        e.add(at, f'must be an RFC 3339 timestamp with an offset, like "2026-10-01T00:00:00Z", got {shown(raw)}')
        return None
    try:
        return datetime.fromisoformat(raw.upper().replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        e.add(at, f"not a valid timestamp: {shown(raw)}")
        return None


def _duration(raw: Any, at: str, e: _Errors) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return raw
    m = DURATION_RE.match(str(raw).strip()) if isinstance(raw, str) else None
    if not m:
        e.add(at, f"must be a duration like 30m, 1h or 2d, got {shown(raw)}")
        return 0
    return int(m.group(1)) * DURATION_SECONDS[m.group(2)]


def _unknown_keys(raw: dict, known: set[str], at: str, e: _Errors) -> None:
    for k in raw:
        if k not in known:
            e.add(f"{at}.{_field(k)}" if at else _field(k), "unknown field")


def _field(name: Any) -> str:
    """A key of the file as part of a field path in an error: as written if plain, else escaped and cut."""
    return name if isinstance(name, str) and FIELD_NAME_RE.match(name) else shown(name)

"""Request parameters: Stripe's v1 form encoding (`a[b][0]=x`) decoded to nested values, and typed getters.

v2 bodies arrive as JSON; the same getters accept native JSON values, so handlers do not care which.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qsl

from .errors import invalid, missing_param

_NOT_LISTS = {"metadata", "payload"}


def _split_key(key: str) -> list[str]:
    if "[" not in key:
        return [key]
    head, rest = key.split("[", 1)
    parts = [head]
    for piece in rest.split("["):
        parts.append(piece.rstrip("]"))
    return parts


def _listify(value, name=""):
    if isinstance(value, dict):
        for k in list(value):
            value[k] = _listify(value[k], k)
        if value and name not in _NOT_LISTS and all(k.isdigit() for k in value):
            return [value[k] for k in sorted(value, key=int)]
    return value


def decode_form(text: str) -> dict:
    """`items[0][price]=p&expand[]=x` -> {"items": [{"price": "p"}], "expand": ["x"]}."""
    root: dict = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        parts = _split_key(key)
        cur = root
        for i, part in enumerate(parts):
            if part == "":
                part = str(len(cur))
            if i == len(parts) - 1:
                cur[part] = value
            else:
                nxt = cur.get(part)
                if not isinstance(nxt, dict):
                    nxt = {}
                    cur[part] = nxt
                cur = nxt
    return _listify(root)


class Params:
    """Typed access to a request's parameters (form or JSON).

    A nested hash (`p.sub("period")`) names its parameters in errors as Stripe does: `period[start]`.
    """

    def __init__(self, data: dict | None, prefix: str | None = None):
        self.data = data or {}
        self.prefix = prefix

    def name(self, key) -> str:
        return f"{self.prefix}[{key}]" if self.prefix else key

    def __contains__(self, key):
        return key in self.data

    def raw(self, key, default=None):
        return self.data.get(key, default)

    def str(self, key, required=False, default=None, choices=None):
        v = self.data.get(key)
        if v is None or v == "":
            if required:
                raise missing_param(self.name(key))
            return default
        if not isinstance(v, (str, int)):
            raise invalid(f"Invalid string: {v!r}", param=self.name(key))
        v = str(v)
        if choices and v not in choices:
            raise invalid(f"Invalid {self.name(key)}: must be one of {', '.join(choices)}", param=self.name(key))
        return v

    def int(self, key, required=False, default=None):
        v = self.data.get(key)
        if v is None or v == "":
            if required:
                raise missing_param(self.name(key))
            return default
        try:
            return int(v)
        except (TypeError, ValueError):
            raise invalid(f"Invalid integer: {v}", param=self.name(key), code="parameter_invalid_integer") from None

    def int_between(self, key, low: int, high: int, required=False):
        """An integer in [low, high], refused in Stripe's words outside it."""
        v = self.int(key, required=required)
        if v is not None and v < low:
            raise invalid(f"This value must be greater than or equal to {low}.", param=self.name(key))
        if v is not None and v > high:
            raise invalid(f"This value must be less than or equal to {high}.", param=self.name(key))
        return v

    def bool(self, key, default=None):
        v = self.data.get(key)
        if v is None or v == "":
            return default
        if isinstance(v, bool):
            return v
        if v in ("true", "false"):
            return v == "true"
        raise invalid(f"Invalid boolean: {v}", param=self.name(key))

    def decimal(self, key, required=False, default=None):
        v = self.data.get(key)
        if v is None or v == "":
            if required:
                raise missing_param(self.name(key))
            return default
        return parse_decimal(v, self.name(key))

    def dict(self, key, required=False):
        v = self.data.get(key)
        if v is None or v == "":
            if required:
                raise missing_param(self.name(key))
            return None
        if not isinstance(v, dict):
            raise invalid(f"Invalid object: {self.name(key)}", param=self.name(key))
        return v

    def sub(self, key, required=False) -> Params:
        return Params(self.dict(key, required=required), prefix=self.name(key))

    def list(self, key) -> list:
        v = self.data.get(key)
        if v is None or v == "":
            return []
        if isinstance(v, list):
            return v
        if isinstance(v, dict):
            return list(v.values())
        return [v]

    def expand(self) -> set:
        return set(self.list("expand"))


def parse_decimal(v, param: str) -> Decimal:
    try:
        d = Decimal(str(v))
    except (InvalidOperation, ValueError):
        raise invalid(f"Invalid decimal: {v}", param=param, code="parameter_invalid_decimal") from None
    if not d.is_finite():
        raise invalid(f"Invalid decimal: {v}", param=param, code="parameter_invalid_decimal")
    return d


def merge_metadata(current: dict, update) -> dict:
    """Stripe's metadata update: keys set to '' are removed; passing '' for the whole hash clears it."""
    if update is None:
        return current
    if update == "":
        return {}
    if not isinstance(update, dict):
        raise invalid("Invalid metadata", param="metadata")
    out = dict(current)
    for k, v in update.items():
        if v in ("", None):
            out.pop(k, None)
        else:
            out[k] = str(v)
    return out

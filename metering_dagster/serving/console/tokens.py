"""Per-customer console tokens: each sees only its own customer's pages, downloads and API answers.

A token is shown once, when made (`metering tokens create --customer ID`); the state folder keeps only its
SHA-256 with the customer id, in a small file of its own (`console_tokens.json`, written under a temporary
name and renamed into place, readable by its owner only). The server re-reads the file when it changes, so a
token made or revoked while it runs counts at the next request.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

TOKENS_FILE = "console_tokens.json"
TOKEN_PREFIX = "mtk_"  # says what a pasted token is, and lets a secret scanner find one


@dataclass(frozen=True)
class StoredToken:
    token_id: str  # the first 12 hex digits of the hash: what `tokens list` shows and `tokens revoke` takes
    customer_id: str
    sha256: str
    created_at: str


def tokens_path(state_dir: Path) -> Path:
    return state_dir / TOKENS_FILE


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def read_tokens(state_dir: Path) -> list[StoredToken]:
    """Every stored token; none when the file does not exist yet."""
    try:
        data = json.loads(tokens_path(state_dir).read_text())
    except FileNotFoundError:
        return []
    return [StoredToken(**entry) for entry in data["tokens"]]


def _write(state_dir: Path, tokens: list[StoredToken]) -> None:
    path = tokens_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    body = json.dumps({"tokens": [t.__dict__ for t in tokens]}, indent=2) + "\n"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def create_token(state_dir: Path, customer_id: str) -> str:
    """A new token for `customer_id`; only its hash is stored. The caller shows it once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    digest = token_hash(token)
    stored = StoredToken(digest[:12], customer_id, digest, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    _write(state_dir, [*read_tokens(state_dir), stored])
    return token


def revoke_token(state_dir: Path, token_id: str) -> list[StoredToken]:
    """Remove the tokens whose id is `token_id` (or, given a whole customer id, all of that customer's): the removed."""
    tokens = read_tokens(state_dir)
    removed = [t for t in tokens if token_id in (t.token_id, t.customer_id)]
    if removed:
        _write(state_dir, [t for t in tokens if t not in removed])
    return removed


class CustomerTokens:
    """The stored tokens as the server sees them: re-read when the file changes (identity by inode, size, time)."""

    def __init__(self, state_dir: Path):
        self._path = tokens_path(state_dir)
        self._state_dir = state_dir
        self._lock = threading.Lock()
        self._identity: tuple[int, ...] | None = None
        self._by_hash: dict[str, str] = {}

    def customer_of(self, token: str) -> str | None:
        """The customer a token belongs to, or None when it is no stored token."""
        try:
            stat = os.stat(self._path)
            identity = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        except FileNotFoundError:
            identity = None
        with self._lock:
            if identity != self._identity:
                stored = read_tokens(self._state_dir) if identity is not None else []
                self._by_hash = {t.sha256: t.customer_id for t in stored}
                self._identity = identity
            by_hash = self._by_hash
        # a lookup by hash: what leaks through timing is a hash of the guess, never a stored token
        return by_hash.get(token_hash(token))

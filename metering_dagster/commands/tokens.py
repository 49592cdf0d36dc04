"""`metering tokens create --customer ID | list | revoke ID`: console tokens that see one customer only.

`create` prints the new token once, on stdout alone (pipe it where it goes); the state folder keeps only its
SHA-256 (serving/console/tokens.py). The customer must be one of the contract's: a token for a customer that does
not exist would see nothing, and a typo would go unnoticed. `list` shows each token's id, customer and creation
time, never a token; `revoke` takes a token id or a customer id (all of its tokens). A running `metering serve`
sees the change at its next request.
"""

from __future__ import annotations

import sys

from metering_dagster.commands.common import EXIT_FAILED, EXIT_OK
from metering_dagster.contract import ContractError, load_contract
from metering_dagster.serving.console.tokens import create_token, read_tokens, revoke_token
from metering_dagster.settings import Settings


def tokens_create(settings: Settings, customer_id: str) -> int:
    try:
        contract = load_contract(settings.contract_path)
    except (ContractError, OSError) as error:
        print(f"metering tokens: cannot read the contract {settings.contract_path}: {error}", file=sys.stderr)
        return EXIT_FAILED
    known = [c.id for c in contract.customers]
    if customer_id not in known:
        print(
            f"metering tokens: {customer_id!r} is not a customer of the contract ({len(known)} customers)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    token = create_token(settings.state_dir, customer_id)
    print(f"metering tokens: a console token for {customer_id}; it is shown once, keep it now", file=sys.stderr)
    print(token)
    return EXIT_OK


def tokens_list(settings: Settings) -> int:
    stored = read_tokens(settings.state_dir)
    if not stored:
        print("no console tokens")
    for token in stored:
        print(f"{token.token_id}  {token.customer_id}  created {token.created_at}")
    return EXIT_OK


def tokens_revoke(settings: Settings, token_id: str) -> int:
    removed = revoke_token(settings.state_dir, token_id)
    if not removed:
        print(f"metering tokens: no token with the id or customer {token_id!r}", file=sys.stderr)
        return EXIT_FAILED
    for token in removed:
        print(f"revoked {token.token_id} ({token.customer_id})")
    return EXIT_OK

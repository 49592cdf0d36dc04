"""`python -m stripe_emulator --port PORT --state FILE`: serve until interrupted; prints the URL once ready."""

from __future__ import annotations

import argparse
import signal
import sys

from .server import EmulatorServer


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stripe_emulator", description="Stripe Billing emulator")
    ap.add_argument("--port", type=int, default=12111, help="TCP port (0 picks a free one)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--state", required=True, help="SQLite state file (created if missing)")
    ap.add_argument(
        "--grace-period-seconds",
        type=int,
        default=3600,
        help="time after a period's end before its invoice finalizes (default 3600)",
    )
    ap.add_argument("--rate-limit", type=float, default=None, help="answer 429 past N requests a second")
    ap.add_argument("--fail-rate", type=float, default=0.0, help="fraction of requests answered 500 (no effect)")
    ap.add_argument(
        "--drop-after-commit-rate",
        type=float,
        default=0.0,
        help="fraction of requests that take effect but whose connection is closed unanswered",
    )
    ap.add_argument("--latency-ms", type=float, default=0, help="added latency per request")
    ap.add_argument("--seed", type=int, default=None, help="seed for the random faults")
    ap.add_argument(
        "--identifier-window-seconds",
        type=int,
        default=None,
        help="forget a meter event identifier this long after its event was received, on the "
        "customer's clock (default: never; Stripe keeps them at least 24 hours)",
    )
    args = ap.parse_args(argv)
    srv = EmulatorServer(
        args.state,
        host=args.host,
        port=args.port,
        grace_period_seconds=args.grace_period_seconds,
        rate_limit=args.rate_limit,
        fail_rate=args.fail_rate,
        drop_after_commit_rate=args.drop_after_commit_rate,
        latency_ms=args.latency_ms,
        seed=args.seed,
        identifier_window_seconds=args.identifier_window_seconds,
    )
    srv.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(srv.url, flush=True)
    try:
        srv.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

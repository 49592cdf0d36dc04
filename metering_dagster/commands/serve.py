"""`metering serve`: the entitlements API and the usage console over HTTP (serving/api/, serving/console/), until
interrupted.

It refuses to start without METERING_API_TOKEN: an API that answers anyone would show every customer's budgets.
It prints one line with the address it listens on (never the token) and logs, on stderr, every answer given from
stale data.
"""

from __future__ import annotations

import logging
import socket
import sys

import uvicorn

from metering_dagster.commands.common import EXIT_FAILED, EXIT_OK
from metering_dagster.serving.api import create_app
from metering_dagster.settings import API_TOKEN, Settings, SettingsError, api_token

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8787
EXIT_NO_TOKEN = 2  # refused to start: no usable METERING_API_TOKEN


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port (port 0: a free one), so the address printed is the one served and a caller
    that connects at once waits in the backlog until the server accepts."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _log_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s metering serve: %(message)s"))
    log = logging.getLogger("metering.serve")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def serve(settings: Settings, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> int:
    try:
        token = api_token()
    except SettingsError as error:
        print(f"metering serve: {error}", file=sys.stderr)
        return EXIT_NO_TOKEN
    if token is None:
        print(
            f"metering serve: {API_TOKEN} is not set: the API answers only callers that send it as a bearer token",
            file=sys.stderr,
        )
        return EXIT_NO_TOKEN
    try:
        sock = _listen(host, port)
    except OSError as error:
        print(f"metering serve: cannot listen on {host}:{port}: {error.strerror or error}", file=sys.stderr)
        return EXIT_FAILED
    _log_to_stderr()
    app = create_app(settings, token)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    print(
        f"metering serve: entitlements API and usage console on {_address(sock)} (reads {settings.analytics_path})",
        flush=True,
    )
    with sock:
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # Ctrl-C: uvicorn has shut down cleanly, then passes the interrupt on
            pass
    return EXIT_OK

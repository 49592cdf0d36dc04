"""The HTTP API over the published data (`metering serve`): `create_app` builds the Starlette application."""

from metering_dagster.serving.api.app import create_app

__all__ = ["create_app"]

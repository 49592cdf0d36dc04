"""The usage console served by `metering serve`: pages, charts, statements and exports over the published data."""

"""Raw *.jsonl / *.jsonl.gz usage logs -> raw.usage_lines (polars, parsed once) + raw.landed_files."""

from .land import ChangedFile, FailedFile, IncompleteFile, LandedFile, LandingResult, find_raw_files, land_new_files

__all__ = [
    "ChangedFile",
    "FailedFile",
    "IncompleteFile",
    "LandedFile",
    "LandingResult",
    "find_raw_files",
    "land_new_files",
]

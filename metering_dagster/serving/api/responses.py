"""How the API answers: JSON bodies, errors as `{"error": code, "detail": text}` with a status a gateway acts on."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse


def error_response(status: int, code: str, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """An error for a caller: a short code to branch on and a sentence for a person. It never repeats what the
    caller sent (a token pasted in the wrong place stays out of responses)."""
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)

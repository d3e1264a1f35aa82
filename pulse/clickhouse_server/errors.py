"""ClickHouse's error codes and how its HTTP interface reports them."""

from __future__ import annotations

import re

# The codes this server raises itself or clients act upon, by name (as in ClickHouse's ErrorCodes.cpp)
NAMES = {
    6: "CANNOT_PARSE_TEXT",
    27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
    36: "BAD_ARGUMENTS",
    46: "UNKNOWN_FUNCTION",
    47: "UNKNOWN_IDENTIFIER",
    57: "TABLE_ALREADY_EXISTS",
    60: "UNKNOWN_TABLE",
    62: "SYNTAX_ERROR",
    73: "UNKNOWN_FORMAT",
    81: "UNKNOWN_DATABASE",
    115: "UNKNOWN_SETTING",
    117: "INCORRECT_DATA",
    159: "TIMEOUT_EXCEEDED",
    164: "READONLY",
    202: "TOO_MANY_SIMULTANEOUS_QUERIES",
    203: "NO_FREE_CONNECTION",
    216: "QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING",
    271: "CANNOT_DECOMPRESS",
    372: "SESSION_NOT_FOUND",
    373: "SESSION_IS_LOCKED",
    394: "QUERY_WAS_CANCELLED",
    497: "ACCESS_DENIED",
    516: "AUTHENTICATION_FAILED",
    1001: "STD_EXCEPTION",
}
# ClickHouse's mapping of error codes to HTTP statuses (HTTPHandler's exceptionCodeToHTTPStatus)
HTTP_STATUS = {
    516: 401, 192: 401, 194: 401, 195: 401,
    164: 403, 497: 403, 291: 403,
    60: 404, 81: 404, 372: 404, 46: 404, 47: 404,
    36: 400, 62: 400, 6: 400, 27: 400, 115: 400, 117: 400, 73: 400, 271: 400,
    159: 500, 394: 500, 202: 503, 203: 503, 373: 500, 216: 500,
}  # fmt: skip
CODE_RE = re.compile(r"Code: (\d+)\.")


class ClickHouseError(Exception):
    """An error as ClickHouse reports it: ``Code: N. DB::Exception: <message>. (NAME)``."""

    def __init__(self, code: int, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status or HTTP_STATUS.get(code, 500)

    def __str__(self) -> str:
        text = self.args[0]
        if text.startswith("Code:"):
            return text
        name = NAMES.get(self.code)
        return f"Code: {self.code}. DB::Exception: {text}" + (f". ({name})" if name else "")

    @classmethod
    def from_engine(cls, exc: BaseException) -> ClickHouseError:
        """The engine's own exception text carries ClickHouse's code; keep it verbatim."""
        text = str(exc).strip()
        for prefix in ("Streaming query failed: ",):
            text = text.removeprefix(prefix)
        m = CODE_RE.search(text)
        if not m:
            return cls(1001, text or type(exc).__name__)
        return cls(int(m.group(1)), text[m.start() :])

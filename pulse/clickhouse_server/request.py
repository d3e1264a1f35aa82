"""Reading a request of ClickHouse's HTTP interface: parameters, credentials, body, external data."""

from __future__ import annotations

import base64
import gzip
import zlib
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import BinaryIO
from urllib.parse import parse_qsl

from pulse.clickhouse_server.errors import ClickHouseError

# URL parameters that are part of the protocol, not ClickHouse settings
TRANSPORT_PARAMS = {
    "query", "database", "default_format", "query_id", "session_id", "session_timeout", "session_check",
    "user", "password", "compress", "decompress", "enable_http_compression", "wait_end_of_query", "buffer_size",
    "quota_key", "role", "http_headers_progress_interval_ms", "send_progress_in_http_headers",
    "add_http_cors_header", "client_protocol_version", "http_response_buffer_size", "stacktrace",
}  # fmt: skip
EXTERNAL_SUFFIXES = ("_structure", "_types", "_format")


@dataclass(frozen=True)
class ExternalTable:
    """``--external`` data sent with a query: a temporary table for the query's lifetime."""

    name: str
    structure: str
    format: str
    data: bytes


def query_params(query_string: str) -> dict[str, str]:
    return dict(parse_qsl(query_string, keep_blank_values=True))


def credentials(headers, params: dict[str, str]) -> tuple[str, str]:
    """(user, password) from X-ClickHouse-User/Key or Basic auth. A password in the URL is refused:
    URLs end up in logs, shell history and browser history."""
    if "password" in params:
        raise ClickHouseError(516, "Passwords in the URL are not accepted; send X-ClickHouse-Key or Basic auth")
    auth = headers.get("Authorization", "")
    if auth.lower().startswith("basic "):
        try:
            user, _, password = base64.b64decode(auth[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise ClickHouseError(516, "Malformed Authorization header") from None
        return user, password
    return headers.get("X-ClickHouse-User") or params.get("user") or "default", headers.get("X-ClickHouse-Key") or ""


def read_body(rfile: BinaryIO, headers, limit: int) -> bytes:
    """The raw body (chunked or Content-Length), refusing more than ``limit`` bytes."""
    too_large = ClickHouseError(36, f"Request body larger than the server's limit of {limit} bytes", http_status=413)
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        parts, total = [], 0
        while True:
            line = rfile.readline(1024)
            if not line:
                raise ClickHouseError(36, "Request body ended inside a chunk header (client aborted?)")
            try:
                size = int(line.split(b";")[0].strip() or b"0", 16)
            except ValueError:
                raise ClickHouseError(36, "Malformed chunked request body") from None
            if size == 0:
                while rfile.readline(1024) not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return b"".join(parts)
            total += size
            if total > limit:
                raise too_large
            chunk = rfile.read(size)
            if len(chunk) < size:
                raise ClickHouseError(36, "Request body ended early (client aborted?)")
            parts.append(chunk)
            rfile.readline(1024)  # CRLF after each chunk
    raw = headers.get("Content-Length")
    if raw is None:
        return b""
    try:
        length = int(raw)
    except ValueError:
        raise ClickHouseError(36, f"Invalid Content-Length {raw!r}") from None
    if length < 0:
        raise ClickHouseError(36, f"Invalid Content-Length {length}")
    if length > limit:
        raise too_large
    body = rfile.read(length) if length else b""
    if len(body) < length:
        raise ClickHouseError(36, "Request body ended early (client aborted?)")
    return body


def decode_body(body: bytes, encoding: str | None) -> bytes:
    encoding = (encoding or "").strip().lower()
    if not encoding or encoding == "identity" or not body:
        return body
    try:
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
        if encoding == "zstd":
            import zstandard

            return zstandard.ZstdDecompressor().decompressobj().decompress(body)
        if encoding == "lz4":
            import lz4.frame

            return lz4.frame.decompress(body)
        if encoding in ("br", "brotli", "xz", "bz2", "snappy"):
            raise ClickHouseError(36, f"Content-Encoding {encoding!r} is not supported by this server")
    except ClickHouseError:
        raise
    except Exception as exc:  # every codec has its own error type
        raise ClickHouseError(271, f"Cannot decompress the request body ({encoding}): {exc}") from None
    raise ClickHouseError(36, f"Unknown Content-Encoding '{encoding}'")


def encode_body(body: bytes, accept: str | None) -> tuple[bytes, str | None]:
    offered = [a.split(";")[0].strip().lower() for a in (accept or "").split(",")]
    for enc in offered:  # the client's order of preference
        if enc == "gzip":
            return gzip.compress(body, compresslevel=3), "gzip"
        if enc == "deflate":
            return zlib.compress(body, 3), "deflate"
        if enc == "zstd":
            import zstandard

            return zstandard.ZstdCompressor(level=3).compress(body), "zstd"
        if enc == "lz4":
            import lz4.frame

            return lz4.frame.compress(body), "lz4"
    return body, None


def form(content_type: str, body: bytes, params: dict[str, str]) -> tuple[bytes, list[ExternalTable]]:
    """``multipart/form-data`` bodies carry parameters (``query`` among them) and external data files.
    Updates ``params`` and returns what is left of the body and the external tables. Any other body
    is the query (or the query's tail), whatever its Content-Type says: ``curl -d 'SELECT 1'`` sends
    ``application/x-www-form-urlencoded`` and ClickHouse reads it as SQL."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        return body, []
    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not msg.is_multipart():
        raise ClickHouseError(36, "Malformed multipart/form-data body")
    files: dict[str, bytes] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            files[name] = payload
        else:
            params[name] = payload.decode("utf-8", errors="strict")
    tables = []
    for name, data in files.items():
        structure = params.pop(f"{name}_structure", None)
        types = params.pop(f"{name}_types", None)
        if structure is None and types is not None:
            structure = ", ".join(f"_{i + 1} {t.strip()}" for i, t in enumerate(types.split(",")))
        if not structure:
            raise ClickHouseError(36, f"External table {name}: neither {name}_structure nor {name}_types given")
        tables.append(ExternalTable(name, structure, params.pop(f"{name}_format", "TabSeparated"), data))
    return b"", tables

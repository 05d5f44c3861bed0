"""What travels over HTTP: request parameters in every encoding, and the server's envelope."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, ClientResponse, MultipartReader, web

_PREFIX = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}  # fmt: skip

# What the front proxy of api.telegram.org serves when the Bot API server behind it does not
# answer: nginx's own page, not the JSON envelope.
_PROXY_PAGE = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


class ApiError(Exception):
    """An error answer; the HTTP status always equals `code`, as clients depend on it.
    `proxy_page`: answered by the front proxy as an HTML page instead of the JSON envelope."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after
        self.proxy_page = False

    @classmethod
    def make(cls, code: int, detail: str | None = None, retry_after: int | None = None) -> ApiError:
        """Prefix `detail` the way the server does: `make(400, "chat not found")`."""
        prefix = _PREFIX.get(code, "Error")
        if code == 429 and detail is None:
            detail = f"retry after {retry_after or 1}"
        return cls(code, f"{prefix}: {detail}" if detail else prefix, retry_after)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.retry_after is not None:
            out["parameters"] = {"retry_after": self.retry_after}
        return out


def bad_request(detail: str) -> ApiError:
    return ApiError.make(400, detail)


class Params:
    """Typed access to raw parameters; form fields are strings, JSON bodies carry real types."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = dict(raw)

    def has(self, name: str) -> bool:
        return self.raw.get(name) not in (None, "")

    def string(self, name: str, *, required: bool = False) -> str | None:
        value = self.raw.get(name)
        if value is None or value == "":
            if required:
                raise bad_request(f"{name} is empty")
            return None
        return value if isinstance(value, str) else json.dumps(value)

    def integer(self, name: str, *, required: bool = False) -> int | None:
        value = self.raw.get(name)
        if value is None or value == "":
            if required:
                raise bad_request(f"{name} is empty")
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def flag(self, name: str) -> bool:
        value = self.raw.get(name)
        if isinstance(value, str):
            return value.lower() in ("true", "1", "yes")
        return bool(value)

    def decoded(self, name: str) -> Any:
        """Objects and arrays arrive JSON-encoded inside form fields."""
        value = self.raw.get(name)
        if isinstance(value, str):
            if value == "":
                return None
            try:
                return json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {name} JSON object") from None
        return value


async def read_params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    ctype = request.content_type
    if ctype == "application/json":
        body = await request.read()
        if body.strip():
            try:
                decoded = json.loads(body)
            except ValueError:
                raise bad_request("can't parse JSON encoded request") from None
            if not isinstance(decoded, dict):
                raise bad_request("can't parse JSON encoded request")
            params.update(decoded)
    elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for key, value in (await request.post()).items():
            # Uploaded files are kept as their file name; nothing here serves file contents.
            params[key] = value if isinstance(value, str) else getattr(value, "filename", None)
    return params


async def read_webhook_reply(response: ClientResponse) -> dict[str, Any]:
    """Parameters of a method a bot put into its webhook answer, or {} when there is none."""
    ctype = response.content_type
    if ctype == "multipart/form-data":
        params: dict[str, Any] = {}
        reader = MultipartReader(response.headers, response.content)
        while (part := await reader.next()) is not None:
            if isinstance(part, BodyPartReader) and part.name:
                params[part.name] = part.filename or await part.text()
        return params
    body = await response.read()
    if ctype == "application/x-www-form-urlencoded":
        return dict(parse_qsl(body.decode(), keep_blank_values=True))
    try:
        decoded = json.loads(body) if body.strip() else {}
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def ok_response(result: Any, description: str | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": True, "result": result}
    if description:
        body["description"] = description
    return web.json_response(body)


def error_response(error: ApiError) -> web.Response:
    if error.proxy_page:
        reason = _PREFIX.get(error.code, "Error")
        page = _PROXY_PAGE.format(code=error.code, reason=reason)
        return web.Response(status=error.code, text=page, content_type="text/html")
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return web.json_response(error.body(), status=error.code, headers=headers)

"""Every exchange with the Clerk double, checked against Clerk's published OpenAPI specs.

Requests (what Passgram sends): the operation exists, query and header parameters are declared
and well-typed, required ones are there, the body has a declared content type and matches its
schema, the security the spec asks for is met. Answers (what the double returns): the status is
declared for the operation and the body matches the schema for it.

Two readings of the specs, each deliberate:
- `nullable: true` beside `allOf`/`oneOf`/`anyOf` admits null for the whole schema, as the
  spec's authors mean it (Clerk returns `"first_factor_verification": null` before a code is
  sent). A strict OpenAPI 3.0.3 reading would reject every such null.
- A 429 is accepted with Clerk's error body on any operation: Clerk's documented rate limits
  apply to endpoints whose spec entry lists no 429 (sign-in and sign-up create among them).
  So is any 5xx, with any body: an outage is not something an operation declares.

The YAML is parsed once per test session, with libyaml's C loader.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import yaml
from jsonschema.exceptions import ValidationError
from jsonschema.validators import extend
from openapi_schema_validator import OAS30ReadValidator, OAS30WriteValidator

from bot.sandbox.clerk import ClerkDouble, Exchange

SPEC_DIR = Path(__file__).parent / "openapi"
SPEC_FILES = {"fapi": "fapi-2026-05-12.yml", "bapi": "bapi-2026-05-12.yml"}
_RATE_LIMITED = {
    "description": "Rate limited (Clerk's system limits)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ClerkErrors"}}},
}
_NOT_OPERATIONS = frozenset({"parameters", "summary", "description", "servers"})

Keyword = Callable[[Any, Any, Any, Mapping[str, Any]], Iterator[ValidationError]]


def _null_when_nullable(keyword: Keyword) -> Keyword:
    def check(validator: Any, value: Any, instance: Any, schema: Mapping[str, Any]) -> Any:
        if instance is None and schema.get("nullable") is True:
            return
        yield from keyword(validator, value, instance, schema)

    return check


def _nullable_compositions(cls: Any) -> Any:
    names = ("allOf", "anyOf", "oneOf")
    return extend(cls, {name: _null_when_nullable(cls.VALIDATORS[name]) for name in names})


ResponseValidator = _nullable_compositions(OAS30ReadValidator)
RequestValidator = _nullable_compositions(OAS30WriteValidator)


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    definition: Mapping[str, Any]
    parameters: tuple[Mapping[str, Any], ...]

    @property
    def id(self) -> str:
        return str(self.definition.get("operationId", f"{self.method} {self.template}"))


class Spec:
    def __init__(self, api: str, document: Mapping[str, Any]) -> None:
        self.api = api
        self.document = document
        self._validators: dict[tuple[int, bool], Any] = {}
        operations = []
        for template, item in document["paths"].items():
            shared = [self.resolve(p) for p in item.get("parameters", ())]
            for method, definition in item.items():
                if method in _NOT_OPERATIONS:
                    continue
                own = [self.resolve(p) for p in definition.get("parameters", ())]
                names = {(p["in"], p["name"]) for p in own}
                merged = own + [p for p in shared if (p["in"], p["name"]) not in names]
                regex = re.sub(r"\\\{([^}]+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
                operations.append(
                    Operation(
                        method.upper(),
                        template,
                        re.compile(f"^{regex}$"),
                        definition,
                        tuple(merged),
                    )
                )
        # Literal segments win over parameters (/users/count before /users/{user_id}).
        operations.sort(key=lambda op: (op.template.count("{"), -len(op.template)))
        self.operations = operations

    def resolve(self, node: Any) -> Any:
        while isinstance(node, Mapping) and "$ref" in node:
            target: Any = self.document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def find(self, method: str, path: str) -> Operation | None:
        return next(
            (op for op in self.operations if op.method == method and op.pattern.match(path)), None
        )

    def errors(self, schema: Mapping[str, Any], instance: Any, *, request: bool) -> list[str]:
        key = (id(schema), request)
        validator = self._validators.get(key)
        if validator is None:
            # The schema as the root, with the spec's components beside it, so that the
            # spec's own "#/components/…" references resolve.
            root = {**schema, "components": self.document["components"]}
            cls = RequestValidator if request else ResponseValidator
            validator = self._validators[key] = cls(root, format_checker=cls.FORMAT_CHECKER)
        return [
            f"{error.message} (at {'/'.join(map(str, error.absolute_path)) or 'top'})"
            for error in validator.iter_errors(instance)
        ]

    # -- requests ----------------------------------------------------------------------------

    def check_request(self, exchange: Exchange) -> list[str]:
        op = self.find(exchange.method, exchange.path)
        if op is None:
            return [f"{exchange.method} {exchange.path}: not an operation of the {self.api} spec"]
        problems = self._parameters(op, exchange) + self._security(op, exchange)
        problems += self._request_body(op, exchange)
        return [f"{op.id} request: {p}" for p in problems]

    def _parameters(self, op: Operation, exchange: Exchange) -> list[str]:
        problems = []
        query: defaultdict[str, list[str]] = defaultdict(list)
        for name, value in exchange.query:
            query[name].append(value)
        declared = {(p["in"], p["name"]): p for p in op.parameters}
        scheme_params = self._scheme_query_params()
        for name, values in query.items():
            param = declared.get(("query", name))
            if param is None:
                if name not in scheme_params:
                    problems.append(f"query parameter {name!r} is not in the spec")
                continue
            schema = self.resolve(param.get("schema", {}))
            if schema.get("type") != "array" and len(values) > 1:
                problems.append(f"query parameter {name!r} given {len(values)} times")
            value = coerce(values if schema.get("type") == "array" else values[0], schema, self)
            problems += [f"query {name}: {e}" for e in self.errors(schema, value, request=True)]
        for (where, name), param in declared.items():
            if not param.get("required"):
                continue
            present = name in query if where == "query" else header(exchange.headers, name)
            if where in ("query", "header") and not present:
                problems.append(f"required {where} parameter {name!r} is missing")
        return problems

    def _scheme_query_params(self) -> set[str]:
        schemes = self.document.get("components", {}).get("securitySchemes", {})
        return {s["name"] for s in schemes.values() if s.get("in") == "query"}

    def _security(self, op: Operation, exchange: Exchange) -> list[str]:
        requirements = op.definition.get("security", self.document.get("security", [{}]))
        schemes = self.document["components"].get("securitySchemes", {})
        query = dict(exchange.query)
        problems = []
        if not any(
            all(_satisfied(schemes[name], exchange, query) for name in requirement)
            for requirement in requirements
        ):
            problems.append(f"no security requirement met (needs one of {requirements})")
        native = schemes.get("ProductionNativeFlag")
        if native and header(exchange.headers, "Authorization") is not None:
            # "It should always be set to true when using the Authorization header."
            if query.get(native["name"]) not in ("1", "true"):
                problems.append(f"Authorization header without {native['name']}=true")
        return problems

    def _request_body(self, op: Operation, exchange: Exchange) -> list[str]:
        body = self.resolve(op.definition.get("requestBody"))
        if not exchange.body:
            if body and body.get("required"):
                return ["the required body is missing"]
            return []
        if not body:
            return ["a body where the spec has none"]
        content_type = (header(exchange.headers, "Content-Type") or "").split(";")[0].strip()
        media = body.get("content", {}).get(content_type)
        if media is None:
            return [f"body as {content_type or 'no content type'}, not {list(body['content'])}"]
        schema = self.resolve(media.get("schema", {}))
        if content_type == "application/x-www-form-urlencoded":
            fields: defaultdict[str, list[str]] = defaultdict(list)
            for name, value in parse_qsl(exchange.body.decode(), keep_blank_values=True):
                fields[name].append(value)
            instance: Any = {
                name: coerce(
                    values if len(values) > 1 else values[0],
                    schema.get("properties", {}).get(name, {}),
                    self,
                )
                for name, values in fields.items()
            }
        else:
            try:
                instance = json.loads(exchange.body)
            except ValueError:
                return ["the body is not JSON"]
        return [f"body: {e}" for e in self.errors(schema, instance, request=True)]

    # -- answers -----------------------------------------------------------------------------

    def check_response(self, exchange: Exchange) -> list[str]:
        op = self.find(exchange.method, exchange.path)
        if op is None:
            return []  # reported with the request
        responses = op.definition.get("responses", {})
        status = str(exchange.status)
        answer = (
            responses.get(status) or responses.get(f"{status[0]}XX") or responses.get("default")
        )
        if answer is None and exchange.status == 429:
            answer = _RATE_LIMITED
        if answer is None and exchange.status >= 500:
            return []  # an outage answers with whatever it has, listed or not
        if answer is None:
            return [f"{op.id} answer: status {status} is not in the spec ({sorted(responses)})"]
        content = self.resolve(answer).get("content")
        if not content:
            return (
                [f"{op.id} answer: a body where the spec has none"]
                if exchange.response_body
                else []
            )
        content_type = (header(exchange.response_headers, "Content-Type") or "").split(";")[0]
        media = content.get(content_type.strip())
        if media is None:
            return [f"{op.id} answer: {content_type or 'no content type'}, not {list(content)}"]
        try:
            instance = json.loads(exchange.response_body)
        except ValueError:
            return [f"{op.id} answer: the body is not JSON"]
        schema = self.resolve(media.get("schema", {}))
        return [
            f"{op.id} answer {status}: {e}" for e in self.errors(schema, instance, request=False)
        ]


def _satisfied(scheme: Mapping[str, Any], exchange: Exchange, query: Mapping[str, str]) -> bool:
    if scheme.get("type") == "http":
        value = header(exchange.headers, "Authorization") or ""
        return value.lower().startswith(f"{scheme.get('scheme', '').lower()} ")
    if scheme.get("type") == "apiKey":
        name = scheme["name"]
        if scheme.get("in") == "query":
            return name in query
        if scheme.get("in") == "header":
            return header(exchange.headers, name) is not None
        return f"{name}=" in (header(exchange.headers, "Cookie") or "")
    return False


def header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def coerce(value: str | list[str], schema: Mapping[str, Any], spec: Spec) -> Any:
    """A form or query string as the type its schema declares, for the schema check."""
    schema = spec.resolve(schema)
    kind = schema.get("type")
    if kind == "array":
        values = value if isinstance(value, list) else [value]
        return [coerce(v, schema.get("items", {}), spec) for v in values]
    if isinstance(value, list):
        return value
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
        if kind == "object":
            return json.loads(value)
    except ValueError:
        return value
    if kind == "boolean":
        return {"true": True, "false": False}.get(value, value)
    return value


@functools.cache
def spec(api: str) -> Spec:
    with (SPEC_DIR / SPEC_FILES[api]).open("rb") as f:
        return Spec(api, yaml.load(f, Loader=yaml.CSafeLoader))


def violations(exchanges: list[Exchange]) -> list[str]:
    """Every way these exchanges stray from the specs, one line each."""
    found = []
    for number, exchange in enumerate(exchanges, 1):
        checked = spec(exchange.api)
        for problem in checked.check_request(exchange) + checked.check_response(exchange):
            found.append(f"#{number} {exchange.method} {exchange.path}: {problem}")
    return found


@contextlib.asynccontextmanager
async def spec_checked(**options: Any) -> AsyncIterator[ClerkDouble]:
    """A running Clerk double whose every exchange must follow the specs (checked at the end)."""
    double = ClerkDouble(**options)
    await double.start()
    try:
        yield double
    finally:
        await double.stop()
    problems = violations(double.exchanges)
    assert not problems, "exchanges that stray from Clerk's specs:\n" + "\n".join(problems)

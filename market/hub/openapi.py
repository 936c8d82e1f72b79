"""The market node's OpenAPI document, generated from its route table and wire models.

The REST API declares its routes once, as :class:`Route` entries (method, path, summary, query model,
response type, error statuses, handler). :func:`build_api <market.hub.api.build_api>` registers them
with aiohttp; :func:`openapi_document` describes them, taking every schema from the pydantic models,
so the document cannot say something the code does not do. The generated document is committed as
``market/hub/openapi.json`` and served at ``/market/v1/openapi.json``; a contract test fails when the
two drift apart. Regenerate it with::

    python -m market.hub.openapi          # rewrite market/hub/openapi.json
    python -m market.hub.openapi --check  # exit 1 if the committed file is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

OPENAPI_VERSION = "3.1.0"
REF_TEMPLATE = "#/components/schemas/{model}"
COMMITTED_PATH = Path(__file__).with_name("openapi.json")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
JsonSchema = dict[str, Any]

_PATH_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Route:
    """One REST endpoint: what aiohttp registers and what the document describes."""

    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    path: str
    operation_id: str
    summary: str
    handler: Handler
    response: Any
    """The 200 body: a pydantic model class or any type a ``TypeAdapter`` accepts (``list[X]``)."""
    query: type[BaseModel] | None = None
    """A model whose fields are the query parameters (by alias)."""
    errors: tuple[int, ...] = ()
    """Error statuses the endpoint answers on purpose; each carries an ``ErrorMessage`` body."""
    description: str = ""
    body: Any = None
    """The JSON request body: a pydantic model class or any ``TypeAdapter`` type; None for none."""
    success_status: int = 200
    """The status of the successful answer (201 for creations, 204 for no content)."""
    also: tuple[int, ...] = ()
    """Further success statuses with the same body (206 for a byte range, 200 for an existing object)."""
    content_type: str = "application/json"
    """The media type of the success body (``application/octet-stream`` with ``response=bytes``)."""
    body_content_type: str = "application/json"
    """The media type of the request body (``application/octet-stream`` with ``body=bytes``)."""
    server: str | None = None
    """A base URL other than the document's for this path (a route outside the API's mount point)."""

    @property
    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)


class _Components:
    """Collects named schemas, refusing two different schemas under one name."""

    def __init__(self) -> None:
        self.schemas: dict[str, JsonSchema] = {}

    def add(self, name: str, schema: JsonSchema) -> None:
        known = self.schemas.setdefault(name, schema)
        if known != schema:
            raise ValueError(f"two different schemas are both named {name!r}; rename one of the models")

    def schema_of(self, tp: Any, mode: Literal["validation", "serialization"]) -> JsonSchema:
        """The schema of ``tp``: a ``$ref`` for a model, inline otherwise; definitions are collected."""
        schema = TypeAdapter(tp).json_schema(by_alias=True, ref_template=REF_TEMPLATE, mode=mode)
        for name, definition in schema.pop("$defs", {}).items():
            self.add(name, _without_property_titles(definition))
        schema = _without_property_titles(schema)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            self.add(tp.__name__, schema)
            return {"$ref": REF_TEMPLATE.format(model=tp.__name__)}
        return schema


def _without_property_titles(schema: JsonSchema) -> JsonSchema:
    # pydantic titles each field after its Python name ("Offerid"); the wire name says it better.
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return schema
    tidy = {name: {k: v for k, v in prop.items() if k != "title"} for name, prop in properties.items()}
    return {**schema, "properties": tidy}


def _without_null(prop: JsonSchema) -> JsonSchema:
    # An optional query parameter is absent, never null: `str | None = None` is documented as a string.
    prop = dict(prop)
    variants = prop.get("anyOf")
    if isinstance(variants, list) and {"type": "null"} in variants:
        rest = [v for v in variants if v != {"type": "null"}]
        if len(rest) == 1:
            del prop["anyOf"]
            prop.update(rest[0])
    if prop.get("default", 0) is None:
        del prop["default"]
    return prop


def _query_parameters(model: type[BaseModel]) -> list[JsonSchema]:
    schema = model.model_json_schema(by_alias=True, ref_template=REF_TEMPLATE, mode="validation")
    if "$defs" in schema:
        raise ValueError(f"query model {model.__name__} has nested models; query parameters must be scalars")
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = _without_null(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        parameter: JsonSchema = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _operation(route: Route, components: _Components, error_model: type[BaseModel]) -> JsonSchema:
    error_ref = components.schema_of(error_model, "serialization")
    parameters: list[JsonSchema] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in route.path_params
    ]
    if route.query is not None:
        parameters += _query_parameters(route.query)
    responses: JsonSchema = {}
    for status in (route.success_status, *route.also):
        success: JsonSchema = {"description": HTTPStatus(status).phrase}
        if route.response is not None:
            success["content"] = {
                route.content_type: {"schema": components.schema_of(route.response, "serialization")}
            }
        responses[str(status)] = success
    for status in route.errors:
        responses[str(status)] = {
            "description": HTTPStatus(status).phrase,
            "content": {"application/json": {"schema": error_ref}},
        }
    responses["default"] = {
        "description": "Unexpected error",
        "content": {"application/json": {"schema": error_ref}},
    }
    operation: JsonSchema = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "responses": responses,
    }
    if route.description:
        operation["description"] = route.description
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {route.body_content_type: {"schema": components.schema_of(route.body, "validation")}},
        }
    return operation


def build_document(
    routes: Sequence[Route],
    *,
    title: str,
    version: str,
    server_url: str,
    error_model: type[BaseModel],
    description: str = "",
) -> JsonSchema:
    """An OpenAPI 3.1 document describing ``routes``; every error body is ``error_model``."""
    components = _Components()
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        methods = paths.setdefault(route.path, {})
        key = route.method.lower()
        if key in methods:
            raise ValueError(f"{route.method} {route.path} is declared twice")
        methods[key] = _operation(route, components, error_model)
        if route.server is not None:
            servers = [{"url": route.server}]
            if methods.setdefault("servers", servers) != servers:
                raise ValueError(f"the operations on {route.path} name different servers")
    info: JsonSchema = {"title": title, "version": version}
    if description:
        info["description"] = description
    return {
        "openapi": OPENAPI_VERSION,
        "info": info,
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {"schemas": components.schemas},
    }


def render(document: JsonSchema) -> str:
    """The canonical text of a document: sorted keys, two-space indent, trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generated_text() -> str:
    """What ``market/hub/openapi.json`` should contain for the code as it is now."""
    from market.hub.api import openapi_document

    return render(openapi_document())


def document_cli(prog: str, text: str, committed: Path, argv: Sequence[str] | None = None) -> int:
    """The ``python -m <module> [--check] [--output F]`` command every API module offers: write its
    generated document ``text`` to the committed file, or only report (exit 1) that it is stale."""
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=document_cli.__doc__)
    parser.add_argument("--check", action="store_true", help="only report whether the file is stale")
    parser.add_argument("--output", type=Path, default=committed, help="where to write the document")
    args = parser.parse_args(argv)
    output: Path = args.output
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else None
        if current != text:
            print(f"{output} is stale; run `python -m {prog}`", file=sys.stderr)
            return 1
        return 0
    output.write_text(text, encoding="utf-8")
    print(f"wrote {output}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or ``--check``) the committed OpenAPI document of the market node's REST API."""
    return document_cli("market.hub.openapi", generated_text(), COMMITTED_PATH, argv)


if __name__ == "__main__":
    sys.exit(main())

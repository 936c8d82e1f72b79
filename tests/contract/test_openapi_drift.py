"""The committed OpenAPI document of the market node's REST API matches the code.

Two ways to drift: a model or route changed without regenerating ``market/hub/openapi.json``, or a
route was registered on the aiohttp sub-application without being declared (or the other way round).
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from aiohttp import web

from market.hub.api import API_PREFIX, build_api
from market.hub.openapi import COMMITTED_PATH, generated_text
from market.hub.registry_api import RegistrySettings, build_registry_apps
from market.hub.server import MarketNode, MarketNodeConfig

REGENERATE = "run `python -m market.hub.openapi` and commit market/hub/openapi.json"


def committed() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(COMMITTED_PATH.read_text(encoding="utf-8"))
    return document


def test_committed_document_is_what_the_generator_writes() -> None:
    expected = generated_text()
    actual = COMMITTED_PATH.read_text(encoding="utf-8") if COMMITTED_PATH.exists() else ""

    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                actual.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                "committed openapi.json",
                "generated now",
                n=2,
            )
        )
        raise AssertionError(f"the OpenAPI document is stale; {REGENERATE}\n{diff[:4000]}")


def test_registered_routes_and_documented_operations_are_the_same() -> None:
    node = MarketNode(MarketNodeConfig(port=0))
    api = build_api(node)
    registered = {
        (route.method.upper(), route.resource.canonical)
        for route in api.router.routes()
        if route.resource is not None and route.method.upper() not in ("HEAD", "OPTIONS")
    }
    # The package registry is served from the root, not /market/v1: its paths name their own server,
    # and they are compared as mounted (HEAD included; it is registered and documented on purpose).
    root = web.Application()
    for prefix, registry_app in build_registry_apps(node.registry, RegistrySettings()).items():
        root.add_subapp(prefix, registry_app)
        registered |= {
            (route.method.upper(), route.resource.canonical)
            for route in registry_app.router.routes()
            if route.resource is not None
        }
    documented = {
        (method.upper(), path)
        for path, operations in committed()["paths"].items()
        for method in operations
        if method != "servers"
    }

    assert registered - documented == set(), f"registered but not documented; {REGENERATE}"
    assert documented - registered == set(), f"documented but not registered; {REGENERATE}"


def test_document_names_the_mount_point_the_server_uses() -> None:
    node = MarketNode(MarketNodeConfig(port=0))
    prefixes = {resource.canonical for resource in node.app.router.resources()}

    assert API_PREFIX in prefixes
    assert committed()["servers"] == [{"url": API_PREFIX}]


def test_every_reference_resolves() -> None:
    document = committed()
    schemas = document["components"]["schemas"]
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert refs, "the document references no schemas at all"
    prefix = "#/components/schemas/"
    dangling = sorted(
        {ref for ref in refs if not ref.startswith(prefix) or ref[len(prefix) :] not in schemas}
    )
    assert dangling == []

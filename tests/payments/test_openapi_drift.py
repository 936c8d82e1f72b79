"""The committed OpenAPI document of the Payment API matches the code and the registered routes."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from market.core.clock import FakeClock
from payments.api import COMMITTED_PATH, build_payment_api, generated_text, main
from payments.driver import DummyDriver
from payments.service import RequestorPayments
from payments.store import PaymentStore

from .conftest import REQUESTOR_ID

REGENERATE = "run `python -m payments.api` and commit payments/openapi.json"


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
                "committed",
                "generated",
                n=2,
            )
        )
        raise AssertionError(f"the OpenAPI document is stale; {REGENERATE}\n{diff[:4000]}")


def test_registered_routes_and_documented_operations_are_the_same() -> None:
    store = PaymentStore.open(":memory:")
    service = RequestorPayments(store, [DummyDriver(clock=FakeClock())], identity=REQUESTOR_ID)
    api = build_payment_api(service)
    registered = {
        (route.method.upper(), route.resource.canonical)
        for route in api.router.routes()
        if route.resource is not None and route.method.upper() not in ("HEAD", "OPTIONS")
    }
    documented = {(m.upper(), path) for path, ops in committed()["paths"].items() for m in ops}
    store.close()
    assert registered == documented, REGENERATE


def test_every_reference_resolves_and_bodies_are_documented() -> None:
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
    assert {ref.rsplit("/", 1)[1] for ref in refs} <= set(schemas)
    create = document["paths"]["/allocations"]["post"]
    assert (
        "201" in create["responses"] and "application/problem+json" in create["responses"]["400"]["content"]
    )
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NewAllocation"
    }


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "openapi.json"
    stale.write_text("{}\n", encoding="utf-8")
    assert main(["--check", "--output", str(stale)]) == 1
    assert main(["--output", str(stale)]) == 0
    assert main(["--check", "--output", str(stale)]) == 0

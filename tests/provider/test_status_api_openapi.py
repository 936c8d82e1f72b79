"""The status API: the committed provider/openapi.json is what the code generates and serves, and each
endpoint through a real server over a fake view."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import aiohttp
import pytest
from aiohttp import web

from market.protocol.messages import AgreementState
from payments.models import DocumentStatus
from provider.status_api import (
    API_PREFIX,
    COMMITTED_PATH,
    ROUTES,
    AgreementInfo,
    DocumentInfo,
    Health,
    PlatformEarnings,
    PublishedOffer,
    _openapi_text,
    agreement_info,
    build_status_api,
    main,
)
from tests.provider.factories import NOW


def test_committed_openapi_document_is_current() -> None:
    assert COMMITTED_PATH.read_text(encoding="utf-8") == _openapi_text(), (
        "provider/openapi.json is stale: run `python -m provider.status_api`"
    )
    assert main(["--check"]) == 0


def test_document_lists_every_route() -> None:
    paths = json.loads(_openapi_text())["paths"]
    assert set(paths) == {
        "/offers",
        "/agreements",
        "/agreements/{agreementId}",
        "/activities",
        "/documents",
        "/earnings",
        "/health",
        "/openapi.json",
    }
    params = paths["/agreements"]["get"]["parameters"]
    assert params[0]["name"] == "state" and "Approved" in params[0]["schema"]["enum"]


# --- the sub-application through a real server, over a fake view ------------------------------------


class FakeView:
    def __init__(self) -> None:
        self.infos = [
            agreement_info(
                agreement_id=f"a-{state.value}",
                state=state,
                requestor_id="0xr",
                runtime="vm",
                valid_to=NOW + timedelta(hours=1),
                approved_date=None,
                created_at=NOW,
                updated_at=NOW,
                reason=None,
                terminator=None,
                proposed_signature="0xs",
                approved_signature=None,
                demand_properties={},
                offer_properties={},
            )
            for state in (AgreementState.APPROVED, AgreementState.REJECTED)
        ]
        self.infos.append(
            agreement_info(
                agreement_id="a-broken",
                state=AgreementState.TERMINATED,
                requestor_id="0xr",
                runtime="vm",
                valid_to=NOW + timedelta(hours=1),
                approved_date=NOW,
                created_at=NOW,
                updated_at=NOW,
                reason={
                    "message": "debit note d-1 was not accepted",
                    "golem.provider.code": "DebitNotesDeadline",
                },
                terminator="Provider",
                proposed_signature="0xs",
                approved_signature="0xt",
                demand_properties={},
                offer_properties={},
            )
        )

    def published_offers(self) -> list[PublishedOffer]:
        return [
            PublishedOffer(
                subscription_id="s-1",
                runtime="vm",
                preset="vm",
                properties={"a": 1.0},
                constraints="()",
                expiration=NOW,
            )
        ]

    def agreement_infos(self, state: AgreementState | None = None) -> list[AgreementInfo]:
        return [i for i in self.infos if state is None or i.state is state]

    def documents(self) -> list[DocumentInfo]:
        return [
            DocumentInfo(
                kind=kind,
                document_id=f"{kind}-{status.value}",
                agreement_id=agreement,
                activity_ids=["act-1"],
                status=status,
                amount=Decimal("0.25"),
                platform="erc20-holesky-tglm",
                issued_at=NOW,
                payment_due_date=None if kind == "DebitNote" else NOW + timedelta(days=1),
            )
            for kind, status, agreement in (
                ("DebitNote", DocumentStatus.ACCEPTED, "a-Approved"),
                ("DebitNote", DocumentStatus.RECEIVED, "a-broken"),
                ("Invoice", DocumentStatus.SETTLED, "a-broken"),
            )
        ]

    def earnings(self) -> list[PlatformEarnings]:
        return [
            PlatformEarnings(
                platform="erc20-holesky-tglm",
                agreements=2,
                issued=Decimal("0.5"),
                accepted=Decimal("0.5"),
                settled=Decimal("0.25"),
            )
        ]

    def health(self) -> Health:
        raise RuntimeError("boom")  # shows the error middleware at work


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    app = web.Application()
    app.add_subapp(API_PREFIX, build_status_api(FakeView()))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}{API_PREFIX}"
    await runner.cleanup()


async def test_served_routes_and_document_match_the_committed_one(base_url: str) -> None:
    registered = {
        (r.method, r.resource.canonical if r.resource else "")
        for r in build_status_api(FakeView()).router.routes()
        if r.method != "HEAD"
    }
    assert registered == {(r.method, r.path) for r in ROUTES}
    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/openapi.json") as response:
        assert await response.text() == COMMITTED_PATH.read_text(encoding="utf-8")


async def test_endpoints_and_errors(base_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base_url}/offers") as response:
            (offer,) = await response.json()
            assert offer["subscriptionId"] == "s-1" and offer["expiration"].endswith("Z")
        async with http.get(f"{base_url}/agreements", params={"state": "Rejected"}) as response:
            assert [a["agreementId"] for a in await response.json()] == ["a-Rejected"]
        async with http.get(f"{base_url}/agreements/a-Approved") as response:
            assert (await response.json())["state"] == "Approved"
        async with http.get(f"{base_url}/agreements", params={"state": "Bogus"}) as response:
            assert response.status == 400 and "invalid query" in (await response.json())["message"]
        async with http.get(f"{base_url}/agreements", params={"limit": "1"}) as response:
            assert response.status == 400  # unknown parameters are refused, not ignored
        async with http.get(f"{base_url}/agreements/nope") as response:
            assert response.status == 404 and (await response.json()) == {"message": "no agreement nope"}
        async with http.get(f"{base_url}/agreements/a-broken") as response:
            broken = await response.json()
            assert broken["terminationCode"] == "DebitNotesDeadline" and broken["terminator"] == "Provider"
            assert broken["reason"]["golem.provider.code"] == "DebitNotesDeadline"
        async with http.get(f"{base_url}/agreements/a-Approved") as response:
            assert (await response.json())["terminationCode"] is None
        async with http.get(f"{base_url}/documents") as response:
            documents = await response.json()
            assert [d["documentId"] for d in documents] == [
                "DebitNote-ACCEPTED",
                "DebitNote-RECEIVED",
                "Invoice-SETTLED",
            ]
            assert documents[0]["amount"] == "0.25" and documents[0]["paymentDueDate"] is None
            assert documents[2]["paymentDueDate"].endswith("Z") and documents[2]["activityIds"] == ["act-1"]
        for query, expected in (
            ({"kind": "Invoice"}, ["Invoice-SETTLED"]),
            ({"agreementId": "a-broken", "kind": "DebitNote"}, ["DebitNote-RECEIVED"]),
            ({"status": "ACCEPTED"}, ["DebitNote-ACCEPTED"]),
            ({"agreementId": "nope"}, []),
        ):
            async with http.get(f"{base_url}/documents", params=query) as response:
                assert [d["documentId"] for d in await response.json()] == expected, query
        for bad in ({"kind": "Receipt"}, {"status": "PAID"}, {"limit": "1"}):
            async with http.get(f"{base_url}/documents", params=bad) as response:
                assert response.status == 400 and "invalid query" in (await response.json())["message"]
        async with http.get(f"{base_url}/earnings") as response:
            assert await response.json() == [
                {
                    "platform": "erc20-holesky-tglm",
                    "agreements": 2,
                    "issued": "0.5",
                    "accepted": "0.5",
                    "settled": "0.25",
                }
            ]
        async with http.get(f"{base_url}/health") as response:
            assert response.status == 500 and (await response.json()) == {"message": "internal error"}
        async with http.get(f"{base_url}/nothing-here") as response:
            assert response.status == 404 and "message" in await response.json()

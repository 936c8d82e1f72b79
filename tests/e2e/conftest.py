"""Shared by the end-to-end tests: the busybox payload image (needs a Docker engine), a local chain
(anvil with our contracts, standing in for holesky), and the check that invoices were paid on it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from blueprints.localnet import Network
from payments import devchain
from payments.devchain import ChainInfo


@pytest.fixture(scope="session")
def busybox(tmp_path_factory: pytest.TempPathFactory) -> object:
    docker = pytest.importorskip("docker")
    try:
        docker.from_env().ping()
    except Exception as exc:  # CI always has an engine; a laptop without one skips with the reason
        pytest.skip(f"Docker engine not reachable: {exc}")
    from exeunits.payloads.image import build_busybox_image

    return build_busybox_image(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainInfo]:
    """One anvil chain for the session; each test's requestor is a fresh account on it."""
    folder: Path = tmp_path_factory.mktemp("chain")
    info = devchain.start(folder)
    try:
        yield info
    finally:
        devchain.stop(folder)


def assert_paid_on_chain(net: Network, invoices: list[dict[str, object]]) -> None:
    """For each payee, the token's Transfer events from the requestor add up to exactly what its
    settled invoices ask, and every invoice is SETTLED in the provider's own books."""
    assert net.chain is not None
    assert invoices and all(i["status"] == "SETTLED" for i in invoices), invoices
    billed: dict[str, Decimal] = defaultdict(Decimal)
    for invoice in invoices:
        assert invoice["payerAddr"] == net.requestor_id, invoice
        billed[str(invoice["payeeAddr"])] += Decimal(str(invoice["amount"]))
    for payee, amount in billed.items():
        moved = devchain.token_transfers(net.chain, sender=net.requestor_id, receiver=payee)
        assert moved, f"no Transfer from {net.requestor_id} to {payee}"
        assert sum((t.amount for t in moved), Decimal(0)) == amount, (payee, amount, moved)


@pytest.fixture(scope="session")
def blueprints_image(busybox: object, tmp_path_factory: pytest.TempPathFactory) -> object:
    """The blueprints' payload image (busybox plus the fractal renderer), built once per session."""
    from blueprints.payloads import build

    return build(tmp_path_factory.mktemp("blueprints-image"))

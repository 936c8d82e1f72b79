"""Agreements survive a daemon restart: they are read back from the SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest
import ya_market
from ya_market.api.requestor_api import RequestorApi

from market.core.identity import Identity
from market.hub.server import MarketNode
from market.protocol.messages import AgreementState
from requestor.config import RequestorConfig
from requestor.daemon import RequestorDaemon
from tests.requestor.conftest import Provider, agree, negotiate

pytestmark = pytest.mark.integration


async def test_agreements_are_reloaded_after_a_restart(
    market_node: MarketNode, provider: Provider, tmp_path: Path
) -> None:

    config = RequestorConfig(
        port=0, market_url=market_node.ws_url, data_dir=tmp_path / "r", payment_platforms="dummy-glm"
    )
    identity = Identity.generate()
    async with RequestorDaemon(config, identity) as daemon:
        _, secret = daemon.app_keys.create("k", daemon.node_id)
        client = ya_market.ApiClient(
            configuration=ya_market.Configuration(host=f"{daemon.url}/market-api/v1"),
            header_name="authorization",
            header_value=f"Bearer {secret}",
        )
        api = RequestorApi(client)
        _, draft_id = await negotiate(api, daemon, provider)
        agreement_id = await agree(api, draft_id)
        await api.confirm_agreement(agreement_id)
        await provider.approve_next()
        await api.wait_for_approval(agreement_id, timeout=10)
        await client.close()

    async with RequestorDaemon(config, identity) as again:
        record = again.market.agreement(agreement_id)
        assert record.state is AgreementState.APPROVED
        assert record.proposed_signature and record.approved_signature
        assert again.app_keys.verify(secret) is not None
        # The agreement feed is back too, and a new event still sorts after it.
        feed = await again.market.collect_agreement_events(None, timeout=0, max_events=10)
        assert [(type(e).__name__, e.agreement_id) for e in feed] == [
            ("AgreementApprovedEvent", agreement_id)
        ]
        assert (config.database_path.stat().st_mode & 0o777) == 0o600

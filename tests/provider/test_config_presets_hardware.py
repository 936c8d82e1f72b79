"""Configuration validation, the preset file, hardware detection and the agreement store."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from market.protocol.messages import Agreement, AgreementState, DemandPart, OfferPart, Party
from provider.agreements import AgreementRecord
from provider.config import ProviderConfig
from provider.hardware import detect_hardware
from provider.presets import Preset, PresetError, PresetStore
from provider.store import AgreementStore
from tests.provider.factories import NOW


def test_config_defaults_match_the_architecture(tmp_path: Path) -> None:
    config = ProviderConfig(data_dir=tmp_path)
    assert config.market_url == "ws://127.0.0.1:7470/ws"
    assert (config.status_host, config.status_port) == ("127.0.0.1", 7466)
    assert config.subnet == "public" and config.runtimes == ["vm", "wasmtime"]
    assert config.payment_platform == "erc20-holesky-tglm"
    assert config.debit_note_interval_sec == 120
    assert isinstance(config.pricing["vm"].cpu_per_hour, Decimal)


@pytest.mark.parametrize(
    "bad",
    [
        {"payment_platform": "erc20.holesky.tglm"},  # yapapi splits property names on dots
        {"runtimes": ["docker"]},
        {"runtimes": []},
        {"debit_note_interval_sec": 10},  # below its own minimum of 60
        {"min_agreement_expiration_sec": 7200, "max_agreement_expiration_sec": 3600},
        {"pricing": {"vm": {"cpu_per_hour": "-1"}}},
        {"unknown_setting": 1},
    ],
)
def test_config_rejects_bad_values(tmp_path: Path, bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ProviderConfig.model_validate({"data_dir": tmp_path, **bad})


def test_deny_list_is_case_insensitive(tmp_path: Path) -> None:
    assert ProviderConfig(data_dir=tmp_path, deny_list=["0xABCD"]).deny_list == ["0xabcd"]


def test_presets_create_list_update(tmp_path: Path) -> None:
    store = PresetStore(tmp_path / "presets.json")
    assert store.all() == []
    store.create(Preset(name="fast", runtime="vm"))
    with pytest.raises(PresetError, match="already exists"):
        store.create(Preset(name="fast", runtime="wasmtime"))
    updated = store.update("fast", pricing={"cpu_per_hour": Decimal("0.5")})
    assert updated.pricing.cpu_per_hour == Decimal("0.5") and updated.runtime == "vm"
    assert PresetStore(tmp_path / "presets.json").get("fast") == updated  # persisted
    with pytest.raises(PresetError, match="no preset"):
        store.update("slow", runtime="vm")
    with pytest.raises(PresetError, match="invalid"):
        store.update("fast", pricing={"start_price": Decimal("-1")})
    (tmp_path / "presets.json").write_text("{not json")
    with pytest.raises(PresetError, match="not a valid presets file"):
        store.all()


def test_hardware_is_detected_and_capped(tmp_path: Path) -> None:
    found = detect_hardware(tmp_path / "not-yet-created")
    assert found.threads >= 1 and found.cores >= 1 and found.memory_gib > 0 and found.storage_gib > 0
    capped = detect_hardware(tmp_path, max_threads=1, max_memory_gib=0.5, max_storage_gib=2)
    assert (capped.threads, capped.cores, capped.memory_gib, capped.storage_gib) == (1, 1, 0.5, 2.0)


def _record(state: AgreementState) -> AgreementRecord:
    agreement = Agreement(
        agreement_id="a-1",
        proposal_id="d-1",
        demand=DemandPart(
            demand_id="dm", requestor_id="0xr", properties={"x": 1}, constraints="()", timestamp=NOW
        ),
        offer=OfferPart(
            offer_id="of", provider_id="0xp", properties={"y": [0.1]}, constraints="()", timestamp=NOW
        ),
        valid_to=NOW + timedelta(hours=1),
        state=AgreementState.PENDING,
        timestamp=NOW,
        proposed_signature="0xr-sig",
    )
    return AgreementRecord(agreement, state, "vm", NOW, NOW)


def test_store_keeps_state_signatures_and_terms(tmp_path: Path) -> None:
    store = AgreementStore(tmp_path / "provider.db")
    record = _record(AgreementState.PENDING)
    store.save(record)
    record.state = AgreementState.APPROVED
    record.agreement = record.agreement.model_copy(
        update={"approved_signature": "0xp-sig", "approved_date": NOW}
    )
    store.save(record)
    store.close()

    reopened = AgreementStore(tmp_path / "provider.db")
    (loaded,) = reopened.records()
    assert loaded.state is AgreementState.APPROVED
    assert (
        loaded.agreement.proposed_signature == "0xr-sig" and loaded.agreement.approved_signature == "0xp-sig"
    )
    assert loaded.agreement.offer.properties == {"y": [0.1]} and loaded.runtime == "vm"
    assert reopened.records(AgreementState.PENDING) == []
    loaded.state = AgreementState.TERMINATED
    loaded.terminator = Party.REQUESTOR
    loaded.reason = {"message": "done"}
    reopened.save(loaded)
    got = reopened.get("a-1")
    assert got is not None and got.terminator is Party.REQUESTOR and got.reason == {"message": "done"}
    assert reopened.get("missing") is None
    reopened.close()

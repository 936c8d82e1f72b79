"""Building a daemon's payment drivers from the platform names it is configured with.

A platform ``erc20-<network>-<token>`` is served by the ERC-20 driver on that network (the network
table plus yagna's environment overrides, :mod:`payments.networks`); a ``dummy-*`` platform by the
:class:`~payments.driver.DummyDriver`, which pays nobody and exists for tests and explicit opt-in
only. All ERC-20 platforms of one daemon share one driver, one SQLite file and one nonce counter
per account.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from market.core.clock import Clock
from market.core.identity import Identity
from payments.driver import DUMMY_PREFIX, DummyDriver, PaymentDriver
from payments.errors import InvalidInputError
from payments.networks import network_for_platform

if TYPE_CHECKING:
    from payments.erc20 import Erc20Driver

ERC20_DATABASE = "erc20.db"


def split_platforms(value: str | Sequence[str]) -> tuple[str, ...]:
    """``"erc20-holesky-tglm, dummy-glm"`` → a tuple, order kept, duplicates and blanks dropped."""
    items = value.split(",") if isinstance(value, str) else list(value)
    seen: dict[str, None] = {}
    for item in items:
        if item.strip():
            seen.setdefault(item.strip(), None)
    if not seen:
        raise InvalidInputError("at least one payment platform is needed")
    return tuple(seen)


def make_drivers(
    platforms: Sequence[str],
    *,
    data_dir: Path,
    identity: Identity | None,
    trust_dummy_claims: bool = False,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> list[PaymentDriver]:
    """The drivers serving ``platforms``.

    ``identity`` is the key that pays (a requestor); ``None`` builds drivers that only check
    payments and read balances (a provider). ``trust_dummy_claims`` lets a provider's dummy driver
    take a requestor's dummy payment on trust (there is nothing to check on a dummy platform).
    Unknown or malformed platform names raise :class:`~payments.errors.InvalidInputError`.
    """
    env = os.environ if env is None else env
    dummy = [p for p in platforms if p.startswith(DUMMY_PREFIX)]
    erc20 = [p for p in platforms if not p.startswith(DUMMY_PREFIX)]
    drivers: list[PaymentDriver] = []
    if dummy:
        drivers.append(DummyDriver(platform_names=dummy, trust_remote_claims=trust_dummy_claims))
    if erc20:
        drivers.append(_erc20(erc20, data_dir=data_dir, identity=identity, env=env, clock=clock))
    return drivers


def _erc20(
    platforms: Sequence[str],
    *,
    data_dir: Path,
    identity: Identity | None,
    env: Mapping[str, str],
    clock: Clock | None,
) -> Erc20Driver:
    from eth_account import Account

    from payments.erc20 import Erc20Driver, SenderSettings

    networks = [network_for_platform(p, env) for p in platforms]
    account = None if identity is None else Account.from_key(identity.private_key_hex())
    return Erc20Driver(
        database=data_dir / ERC20_DATABASE,
        networks=networks,
        account=account,
        clock=clock,
        settings=SenderSettings.from_env(env),
    )

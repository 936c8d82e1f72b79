"""Settings of the requestor daemon (``golem requestor serve``).

Layered like every component's config (defaults → TOML ``[requestor]`` → ``GOLEM_REQUESTOR_*``
environment → flags) by :func:`market.core.config.load_config`. Paths left unset derive from
``data_dir``, so one ``--data-dir`` moves everything a daemon owns.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from market.core.config import data_dir as default_data_dir

ENV_PREFIX = "GOLEM_REQUESTOR_"
DEFAULT_PORT = 7465


class RequestorConfig(BaseModel):
    """Everything ``golem requestor serve`` can be told."""

    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535, description="0 picks a free port")
    market_url: str = Field(default="ws://127.0.0.1:7470/ws", description="the market node's WebSocket")
    data_dir: Path = Field(default_factory=lambda: default_data_dir() / "requestor")
    keystore: Path | None = Field(default=None, description="default: <data_dir>/keystore.json")
    password_file: Path | None = Field(
        default=None,
        description=(
            "file holding the keystore password; default: $GOLEM_KEYSTORE_PASSWORD, else "
            "<data_dir>/keystore.password (created 0600 on first run)"
        ),
    )
    node_name: str = Field(default="requestor", max_length=64)
    demand_ttl_seconds: float = Field(default=3600.0, gt=0, description="lifetime of a demand (yagna: 1 h)")
    market_request_timeout: float = Field(default=10.0, gt=0)
    payment_platforms: str = Field(
        default="erc20-holesky-tglm",
        description=(
            "comma-separated platforms this requestor pays on, the first being the default; "
            "erc20-<network>-<token> (network table + HOLESKY_GETH_ADDR-style overrides) "
            "or dummy-* (no chain)"
        ),
    )

    @property
    def keystore_path(self) -> Path:
        return self.keystore or self.data_dir / "keystore.json"

    @property
    def default_password_file(self) -> Path:
        return self.data_dir / "keystore.password"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "requestor.db"

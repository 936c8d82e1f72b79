"""Our own Vyper contracts: the test GLM token (with its faucet) and the batch-transfer contract.

The sources sit beside this module; their compiled artifacts (ABI and deployable bytecode) are
committed as ``<Name>.json`` so that daemons need no compiler at run time. ``python -m
payments.contracts`` rebuilds the artifacts from source, and a test recompiles and compares, so the
committed bytecode is always what the sources produce.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONTRACTS = ("TestGLM", "MultiTransfer")
EVM_VERSION = "cancun"
"""Cancun keeps the bytecode deployable on chains that lag behind the newest fork."""


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    """Deployable (init) code, ``0x``-prefixed hex."""
    compiler: str
    source_sha256: str

    def to_json(self) -> str:
        body = {
            "name": self.name,
            "compiler": self.compiler,
            "evmVersion": EVM_VERSION,
            "sourceSha256": self.source_sha256,
            "abi": self.abi,
            "bytecode": self.bytecode,
        }
        return json.dumps(body, indent=1, sort_keys=True) + "\n"


AMOUNT_BITS = 96
"""A packed batch entry is ``address (160 bits) ‖ amount (96 bits)``, the layout of Golem's
multi-transfer contract and of ours (``MultiTransfer.golemTransferDirectPacked``)."""


def pack_payment(payee: str, amount_wei: int) -> bytes:
    """One 32-byte batch entry paying ``amount_wei`` to ``payee``.

    Raises :class:`ValueError` for an amount that does not fit 96 bits (about 79 billion tokens of
    18 decimals): the contract would read the excess bits as part of the address.
    """
    body = payee.removeprefix("0x")
    if len(body) != 40:
        raise ValueError(f"{payee!r} is not a 20-byte hex address")
    try:
        address = bytes.fromhex(body)
    except ValueError:
        raise ValueError(f"{payee!r} is not a 20-byte hex address") from None
    if not 0 <= amount_wei < 2**AMOUNT_BITS:
        raise ValueError(f"amount {amount_wei} wei does not fit the {AMOUNT_BITS} bits of a packed entry")
    return address + amount_wei.to_bytes(AMOUNT_BITS // 8, "big")


def source_path(name: str) -> Path:
    return HERE / f"{name}.vy"


def artifact_path(name: str) -> Path:
    return HERE / f"{name}.json"


def compile_source(name: str) -> Artifact:
    """Compile ``<name>.vy`` with the installed vyper (a test-time dependency, imported here only)."""
    import vyper
    from vyper.compiler import compile_code
    from vyper.compiler.settings import Settings

    source = source_path(name).read_text()
    out = compile_code(
        source,
        output_formats=["abi", "bytecode"],
        settings=Settings(evm_version=EVM_VERSION),
    )
    return Artifact(
        name=name,
        abi=out["abi"],
        bytecode=out["bytecode"],
        compiler=f"vyper {vyper.__version__}",
        source_sha256=hashlib.sha256(source.encode()).hexdigest(),
    )


@cache
def load(name: str) -> Artifact:
    """The committed artifact of one contract."""
    if name not in CONTRACTS:
        raise KeyError(f"unknown contract {name!r}; known: {', '.join(CONTRACTS)}")
    body = json.loads(artifact_path(name).read_text())
    return Artifact(
        name=body["name"],
        abi=body["abi"],
        bytecode=body["bytecode"],
        compiler=body["compiler"],
        source_sha256=body["sourceSha256"],
    )


def rebuild() -> list[Path]:
    """Recompile every contract and rewrite its artifact; the paths written."""
    written = []
    for name in CONTRACTS:
        path = artifact_path(name)
        path.write_text(compile_source(name).to_json())
        written.append(path)
    return written

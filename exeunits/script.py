"""ExeScript, command results, runtime events and the activity state machine, on yagna's wire.

An ExeScript is a JSON array of one-key objects (``[{"deploy": {}}, {"run": {...}}]``). Variant names
are camelCase, but fields inside keep their declared snake_case names (``entry_point``,
``return_code``, ``batch_id``): that is what yapapi sends and reads. Unknown keys inside a command
are ignored, because yapapi sends some (``progress`` with null members, ``{"stream": {"stream": N}}``).
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from ipaddress import IPv4Network
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from exeunits import vpn
from exeunits.errors import ExeScriptError
from market.core.statemachine import transition
from market.core.wire import WireModel

# --- commands ---------------------------------------------------------------------------------------

MAX_VPNS = 16
"""Networks one deploy may join."""
MAX_VPN_NODES = 4096
"""Members one network in a deploy may list."""


class _Command(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class StreamCapture(_Command):
    limit: int | None = Field(default=None, ge=0)
    format: Literal["str", "bin"] = "str"


class AtEndCapture(_Command):
    head: int | None = Field(default=None, ge=0)
    tail: int | None = Field(default=None, ge=0)
    head_tail: int | None = Field(default=None, ge=0, alias="headTail")
    format: Literal["str", "bin"] = "str"


class CaptureMode(_Command):
    """One stream's capture: either streamed as it comes, or kept and returned at the end."""

    stream: StreamCapture | None = None
    at_end: AtEndCapture | None = Field(default=None, alias="atEnd")


class Capture(_Command):
    stdout: CaptureMode | None = None
    stderr: CaptureMode | None = None


class DeployNet(_Command):
    """One VPN the activity joins (what yapapi's ``Node.get_deploy_args`` sends): the network, this
    node's address in it (``nodeIp``) and every member's address (``nodes``: ip → node id)."""

    id: str = Field(min_length=1, max_length=128)
    ip: str
    mask: str | None = None
    gateway: str | None = None
    node_ip: str = Field(alias="nodeIp")
    nodes: dict[str, str] = Field(default_factory=dict, max_length=MAX_VPN_NODES)

    @model_validator(mode="after")
    def _addresses(self) -> DeployNet:
        network = self.network
        vpn.host_address(network, self.node_ip)
        if self.gateway is not None:
            vpn.host_address(network, self.gateway)
        for ip in self.nodes:
            vpn.host_address(network, ip)
        return self

    @property
    def network(self) -> IPv4Network:
        return vpn.parse_network(self.ip, self.mask)


class Deploy(_Command):
    net: list[DeployNet] | None = Field(default=None, max_length=MAX_VPNS)
    hosts: dict[str, str] | None = None
    hostname: str | None = None
    volumes: list[str] | dict[str, Any] | None = None
    env: dict[str, str] | None = None


class Start(_Command):
    args: list[str] = Field(default_factory=list)


class Run(_Command):
    entry_point: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    capture: Capture | None = None


class Transfer(_Command):
    from_: str = Field(alias="from", min_length=1)
    to: str = Field(min_length=1)
    format: str | None = None
    depth: int | None = None
    fileset: Any = None


class Sign(_Command):
    pass


class Terminate(_Command):
    pass


Command = Deploy | Start | Run | Transfer | Sign | Terminate

COMMAND_NAMES: dict[str, type[Command]] = {
    "deploy": Deploy,
    "start": Start,
    "run": Run,
    "transfer": Transfer,
    "sign": Sign,
    "terminate": Terminate,
}
_NAME_OF = {cls: name for name, cls in COMMAND_NAMES.items()}

MAX_COMMANDS = 1000


def command_name(command: Command) -> str:
    return _NAME_OF[type(command)]


def command_to_wire(command: Command) -> dict[str, Any]:
    """The one-key object form, as the command appears in a script (and in ``started`` events)."""
    return {command_name(command): command.model_dump(mode="json", by_alias=True, exclude_unset=True)}


def parse_exescript(text: str | list[Any]) -> list[Command]:
    """Parse an ExeScript (the JSON text of ``ExeScriptRequest.text``, or the decoded list)."""
    if isinstance(text, str):
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise ExeScriptError(f"ExeScript is not JSON: {exc}") from exc
    else:
        raw = text
    if not isinstance(raw, list):
        raise ExeScriptError("an ExeScript is a JSON array of commands")
    if not raw:
        raise ExeScriptError("an ExeScript needs at least one command")
    if len(raw) > MAX_COMMANDS:
        raise ExeScriptError(f"an ExeScript has at most {MAX_COMMANDS} commands")
    commands: list[Command] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or len(item) != 1:
            raise ExeScriptError(f"command {index}: expected an object with one key, the command name")
        ((name, body),) = item.items()
        cls = COMMAND_NAMES.get(name)
        if cls is None:
            raise ExeScriptError(
                f"command {index}: unknown command {name!r} (known: {', '.join(COMMAND_NAMES)})"
            )
        try:
            commands.append(cls.model_validate(body if body is not None else {}))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or name
            raise ExeScriptError(f"command {index} ({name}): {where}: {err['msg']}") from exc
    return commands


# --- results and events -----------------------------------------------------------------------------


class CommandOutcome(StrEnum):
    OK = "Ok"
    ERROR = "Error"


class ExeScriptCommandResult(WireModel):
    index: int
    event_date: datetime
    result: CommandOutcome
    stdout: str | list[int] | None = None
    stderr: str | list[int] | None = None
    message: str | None = None
    is_batch_finished: bool = False


class RuntimeEvent(BaseModel):
    """One streamed event of a batch (``event: runtime`` in SSE). Field names are snake_case on the
    wire, and ``timestamp`` is naive UTC, as yagna sends them."""

    batch_id: str
    index: int
    timestamp: str
    kind: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# --- activity state ---------------------------------------------------------------------------------


class ActivityState(StrEnum):
    """The states of an activity, with yagna's wire names."""

    NEW = "New"
    """Created on the requestor's request; the exe unit is not up yet."""
    INITIALIZED = "Initialized"
    """The exe unit is up and waits for ``deploy``."""
    DEPLOYED = "Deployed"
    """The package is in place (container created / module compiled); waits for ``start``."""
    READY = "Ready"
    """Started: ``run`` and ``transfer`` may be sent."""
    UNRESPONSIVE = "Unresponsive"
    """The exe unit stopped answering; it may come back to Ready."""
    TERMINATED = "Terminated"
    """Ended by ``terminate``, by destroy, or by a failure; nothing more runs."""


ACTIVITY_TRANSITIONS: dict[ActivityState, frozenset[ActivityState]] = {
    ActivityState.NEW: frozenset({ActivityState.INITIALIZED, ActivityState.TERMINATED}),
    ActivityState.INITIALIZED: frozenset({ActivityState.DEPLOYED, ActivityState.TERMINATED}),
    ActivityState.DEPLOYED: frozenset({ActivityState.READY, ActivityState.TERMINATED}),
    ActivityState.READY: frozenset({ActivityState.UNRESPONSIVE, ActivityState.TERMINATED}),
    ActivityState.UNRESPONSIVE: frozenset({ActivityState.READY, ActivityState.TERMINATED}),
    ActivityState.TERMINATED: frozenset(),
}


def activity_transition(current: ActivityState, target: ActivityState) -> ActivityState:
    return transition("activity", ACTIVITY_TRANSITIONS, current, target)


class ActivityStateWire(WireModel):
    """``{"state": [current, pending|null], "reason"?, "errorMessage"?}``."""

    state: tuple[ActivityState, ActivityState | None]
    reason: str | None = None
    error_message: str | None = None


class ActivityUsage(WireModel):
    """``currentUsage`` is ordered like the agreement's ``golem.com.usage.vector``."""

    current_usage: list[float]
    timestamp: int

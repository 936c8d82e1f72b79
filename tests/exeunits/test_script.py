"""ExeScript parsing: what yapapi sends, verbatim, and what must be refused."""

from __future__ import annotations

import json

import pytest

from exeunits.errors import ExeScriptError
from exeunits.script import (
    ACTIVITY_TRANSITIONS,
    ActivityState,
    Deploy,
    Run,
    Start,
    Terminate,
    Transfer,
    activity_transition,
    command_to_wire,
    parse_exescript,
)
from market.core.errors import InvalidTransition

YAPAPI_INIT = '[{"deploy": {}}, {"start": {"args": []}}]'
YAPAPI_RUN = json.dumps(
    [
        {
            "run": {
                "entry_point": "/bin/sh",
                "args": ["-c", "date"],
                "capture": {"stdout": {"stream": {}}, "stderr": {"stream": {}}},
            }
        }
    ]
)


def test_yapapi_scripts_parse() -> None:
    deploy, start = parse_exescript(YAPAPI_INIT)
    assert isinstance(deploy, Deploy) and isinstance(start, Start) and start.args == []
    (run,) = parse_exescript(YAPAPI_RUN)
    assert isinstance(run, Run) and run.entry_point == "/bin/sh" and run.args == ["-c", "date"]
    assert run.capture and run.capture.stdout and run.capture.stdout.stream is not None
    (transfer,) = parse_exescript(
        '[{"transfer": {"from": "gftp://0xabc/h", "to": "container:/golem/input/x"}}]'
    )
    assert isinstance(transfer, Transfer) and transfer.from_ == "gftp://0xabc/h"
    (term,) = parse_exescript('[{"terminate": {}}]')
    assert isinstance(term, Terminate)


def test_yapapi_quirks_are_tolerated() -> None:
    # yapapi's stream limit bug and null progress members: unknown keys are ignored.
    script = [
        {"deploy": {"progress": {"updateInterval": None, "updateStep": None}}},
        {"run": {"entry_point": "/bin/echo", "args": [], "capture": {"stdout": {"stream": {"stream": 100}}}}},
        {
            "run": {
                "entry_point": "/bin/echo",
                "capture": {"stdout": {"atEnd": {"tail": 10, "format": "bin"}}},
            }
        },
    ]
    commands = parse_exescript(json.dumps(script))
    assert len(commands) == 3
    last = commands[2]
    assert isinstance(last, Run) and last.capture and last.capture.stdout and last.capture.stdout.at_end
    assert last.capture.stdout.at_end.tail == 10


def test_round_trip_to_wire() -> None:
    commands = parse_exescript(YAPAPI_RUN)
    assert [command_to_wire(c) for c in commands] == json.loads(YAPAPI_RUN)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not json", "not JSON"),
        ("{}", "JSON array"),
        ("[]", "at least one"),
        ('[{"deploy": {}, "start": {}}]', "one key"),
        ('["deploy"]', "one key"),
        ('[{"explode": {}}]', "unknown command 'explode'"),
        ('[{"run": {"args": []}}]', "entry_point"),
        ('[{"run": {"entry_point": ""}}]', "entry_point"),
        ('[{"transfer": {"to": "container:/x"}}]', "from"),
        ('[{"run": {"entry_point": "/bin/sh", "args": "-c date"}}]', "args"),
    ],
)
def test_bad_scripts_are_refused_clearly(text: str, fragment: str) -> None:
    with pytest.raises(ExeScriptError, match=fragment):
        parse_exescript(text)


def test_activity_state_machine() -> None:
    state = ActivityState.INITIALIZED
    for target in (ActivityState.DEPLOYED, ActivityState.READY, ActivityState.TERMINATED):
        state = activity_transition(state, target)
    with pytest.raises(InvalidTransition):
        activity_transition(ActivityState.TERMINATED, ActivityState.READY)
    with pytest.raises(InvalidTransition):
        activity_transition(ActivityState.INITIALIZED, ActivityState.READY)
    assert all(ActivityState.TERMINATED in targets for s, targets in ACTIVITY_TRANSITIONS.items() if targets)

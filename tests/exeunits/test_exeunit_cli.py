"""``golem exeunit run`` as a payload author uses it: a real process, real Docker, real wasmtime."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from tests.exeunits.conftest import FileServer

GOLEM = [sys.executable, "-c", "from market.cli import main; main()"]


async def golem(*args: str, data_dir: Path) -> tuple[int, str, str]:
    env = dict(os.environ, GOLEM_DATA_DIR=str(data_dir))
    proc = await asyncio.create_subprocess_exec(
        *GOLEM, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def write_script(path: Path, commands: list[dict[str, object]]) -> Path:
    path.write_text(json.dumps(commands))
    return path


STREAM = {"stdout": {"stream": {}}, "stderr": {"stream": {}}}


async def test_wasm_module(tmp_path: Path) -> None:
    from exeunits.payloads.wasm import build_module

    module = tmp_path / "hello.wasm"
    module.write_bytes(build_module("hello"))
    script = write_script(
        tmp_path / "s.json", [{"run": {"entry_point": "main", "args": [], "capture": STREAM}}]
    )
    code, out, err = await golem("exeunit", "run", str(module), str(script), data_dir=tmp_path / "d")
    assert code == 0, err
    assert "[2] stdout: hello from wasm" in out and "[2] finished, exit code 0" in out
    assert "runtime wasmtime" in err
    code, out, _ = await golem("exeunit", "run", str(module), str(script), "--json", data_dir=tmp_path / "d")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["result"]["result"] for line in lines if "result" in line] == ["Ok", "Ok", "Ok"]


async def test_vm_image_with_transfers(tmp_path: Path, busybox_image: object) -> None:
    archive = busybox_image.archive  # type: ignore[attr-defined]
    local_in = tmp_path / "in.txt"
    local_in.write_text("golem\n")
    local_out = tmp_path / "out.txt"
    convert = "tr a-z A-Z < /golem/input/in.txt > /golem/output/o.txt; echo converted; echo warn >&2"
    script = write_script(
        tmp_path / "s.json",
        [
            {"transfer": {"from": f"file://{local_in}", "to": "container:/golem/input/in.txt"}},
            {
                "run": {
                    "entry_point": "/bin/sh",
                    "args": ["-c", convert],
                    "capture": STREAM,
                }
            },
            {"transfer": {"from": "container:/golem/output/o.txt", "to": f"file://{local_out}"}},
            {"run": {"entry_point": "/bin/sh", "args": ["-c", "exit 7"], "capture": STREAM}},
        ],
    )
    code, out, err = await golem("exeunit", "run", str(archive), str(script), data_dir=tmp_path / "d")
    assert code == 1, err  # the last command fails on purpose
    assert "stdout: converted" in out and "stderr: warn" in out
    assert "[5] finished, exit code 7" in out and "[5] Error: command exited with code 7" in out
    assert local_out.read_text() == "GOLEM\n"
    assert "runtime vm" in err


async def test_wrong_hash_never_runs(tmp_path: Path, file_server: FileServer) -> None:
    from exeunits.payloads.wasm import build_module

    file_server.files["m.wasm"] = build_module("hello")
    wrong = hashlib.sha3_224(b"something else").hexdigest()
    script = write_script(tmp_path / "s.json", [{"run": {"entry_point": "main", "capture": STREAM}}])
    ref = f"hash:sha3:{wrong}:{file_server.url}/m.wasm"
    code, out, err = await golem("exeunit", "run", ref, str(script), data_dir=tmp_path / "d")
    assert code == 1 and "not the" in err and "discarded" in err
    assert "hello from wasm" not in out
    right = hashlib.sha3_224(file_server.files["m.wasm"]).hexdigest()
    code, out, err = await golem(
        "exeunit", "run", f"hash:sha3:{right}:{file_server.url}/m.wasm", str(script), data_dir=tmp_path / "d"
    )
    assert code == 0 and "hello from wasm" in out, err


async def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    bad = write_script(tmp_path / "bad.json", [{"explode": {}}])
    code, _, err = await golem(
        "exeunit", "run", str(tmp_path / "none.wasm"), str(bad), data_dir=tmp_path / "d"
    )
    assert code == 1 and "unknown command 'explode'" in err
    good = write_script(tmp_path / "good.json", [{"run": {"entry_point": "main"}}])
    code, _, err = await golem(
        "exeunit", "run", str(tmp_path / "none.wasm"), str(good), data_dir=tmp_path / "d"
    )
    assert code == 1 and "no package file" in err


@pytest.fixture(scope="module")
def busybox_image(tmp_path_factory: pytest.TempPathFactory) -> object:
    docker = pytest.importorskip("docker")
    try:
        docker.from_env().ping()
    except Exception as exc:  # the Docker tests say the same; CI always has an engine
        pytest.skip(f"Docker engine not reachable: {exc}")
    from exeunits.payloads.image import build_busybox_image

    return build_busybox_image(tmp_path_factory.mktemp("image"))


async def test_wasm_transfers_in_and_out(tmp_path: Path) -> None:
    from exeunits.payloads.wasm import build_module

    module = tmp_path / "copy.wasm"
    module.write_bytes(build_module("copy"))
    local_in, local_out = tmp_path / "in.txt", tmp_path / "out.txt"
    local_in.write_text("wasm payload\n")
    script = write_script(
        tmp_path / "s.json",
        [
            {"transfer": {"from": f"file://{local_in}", "to": "container:/golem/input/in.txt"}},
            {"run": {"entry_point": "main", "capture": STREAM}},
            {"transfer": {"from": "container:/golem/output/out.txt", "to": f"file://{local_out}"}},
        ],
    )
    code, out, err = await golem("exeunit", "run", str(module), str(script), data_dir=tmp_path / "d")
    assert code == 0, out + err
    assert local_out.read_bytes() == b"WASM PAYLOAD\n"  # the module upper-cases what it copies


async def test_failing_command_result_carries_exit_code_and_stderr(
    tmp_path: Path, busybox_image: object
) -> None:
    archive = busybox_image.archive  # type: ignore[attr-defined]
    script = write_script(
        tmp_path / "s.json",
        [
            {"run": {"entry_point": "/bin/sh", "args": ["-c", "echo oops >&2; exit 7"], "capture": STREAM}},
            {"run": {"entry_point": "/bin/echo", "args": ["never"], "capture": STREAM}},
        ],
    )
    code, out, _ = await golem("exeunit", "run", str(archive), str(script), "--json", data_dir=tmp_path / "d")
    assert code == 1
    lines = [json.loads(line) for line in out.splitlines()]
    results = [line["result"] for line in lines if "result" in line]
    assert [r["result"] for r in results] == ["Ok", "Ok", "Error"]  # deploy, start, the failing run
    failed = results[-1]
    assert failed["isBatchFinished"] and failed["stderr"] == "oops\n" and "code 7" in failed["message"]
    finished = [
        line["event"]["kind"]["finished"]
        for line in lines
        if "finished" in line.get("event", {}).get("kind", {})
    ]
    assert finished[-1]["return_code"] == 7
    assert all(line["event"]["index"] <= 2 for line in lines if "event" in line)  # nothing ran after it

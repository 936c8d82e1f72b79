"""How long one ``run`` of a small WASI module takes on the ``wasmtime`` runtime, cold and warm.

Run: ``.venv/bin/python tests/benchmarks/bench_wasm.py [--runs N]``. Not collected by pytest (the
``bench_`` prefix), and not a timed assertion: it prints figures.

Rows:

* ``cold``: ``create`` (read + compile the package) + ``deploy`` + ``start`` + the first ``run``.
* ``warm run``: each of ``--runs`` sequential runs of ``hello`` on the same activity: fresh store,
  WASI context, preopens, output files, a worker thread, output read back, epoch callback.
* ``bare wasmtime``: the baseline measured in the same process: a fresh store with stdout/stderr
  files, instantiate and call ``_start`` from an ``InstancePre``, on the calling thread. The ratio
  is what the runtime's safety and streaming cost per run.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

import wasmtime

from exeunits.payloads.wasm import build_module
from exeunits.runtime.base import ActivitySpec, DeployOptions, StreamName
from exeunits.runtime.wasm import WasmRuntimeFactory


def summarise(label: str, samples: list[float]) -> tuple[str, float]:
    ordered = sorted(samples)
    median = statistics.median(ordered)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    row = (
        f"{label:<16} {len(samples):>5} {median * 1e3:>10.3f} {p90 * 1e3:>10.3f} "
        f"{max(ordered) * 1e3:>10.3f} {sum(samples) * 1e3:>11.1f}"
    )
    return row, median


def bare_wasmtime(module_bytes: bytes, folder: Path, runs: int) -> list[float]:
    engine = wasmtime.Engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    pre = linker.instantiate_pre(wasmtime.Module(engine, module_bytes))
    samples = []
    for i in range(runs):
        started = time.perf_counter()
        wasi = wasmtime.WasiConfig()
        wasi.argv = ["hello"]
        wasi.stdout_file = str(folder / f"out-{i}")
        wasi.stderr_file = str(folder / f"err-{i}")
        store = wasmtime.Store(engine)
        store.set_wasi(wasi)
        instance = pre.instantiate(store)
        start = instance.exports(store)["_start"]
        assert isinstance(start, wasmtime.Func)
        start(store)
        samples.append(time.perf_counter() - started)
    return samples


async def measure(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-wasm-") as temp:
        root = Path(temp)
        package = root / "hello.wasm"
        module_bytes = build_module("hello")
        package.write_bytes(module_bytes)
        spec = ActivitySpec(
            activity_id="bench",
            package_path=package,
            package_hash=hashlib.sha3_224(module_bytes).hexdigest(),
            workdir=root / "activity",
        )
        received = 0

        def on_output(_stream: StreamName, data: bytes) -> None:
            nonlocal received
            received += len(data)

        async with WasmRuntimeFactory() as factory:
            started = time.perf_counter()
            runtime = await factory.create(spec)
            created = time.perf_counter()
            await runtime.deploy(DeployOptions())
            await runtime.start([])
            first = await runtime.run("hello", [], on_output)
            cold = time.perf_counter() - started
            assert first.return_code == 0 and first.stdout == b"hello from wasm\n"

            warm = []
            for _ in range(runs):
                run_started = time.perf_counter()
                result = await runtime.run("hello", [], on_output)
                warm.append(time.perf_counter() - run_started)
                assert result.return_code == 0
            await runtime.terminate()

        (root / "bare").mkdir()
        baseline = bare_wasmtime(module_bytes, root / "bare", runs)

    assert received == (runs + 1) * len(b"hello from wasm\nto stderr\n")
    print(f"wasmtime {wasmtime_version()}, hello ({len(module_bytes)} bytes), {runs} warm runs\n")
    print(f"{'':<16} {'runs':>5} {'median ms':>10} {'p90 ms':>10} {'max ms':>10} {'total ms':>11}")
    print(f"{'cold (create)':<16} {1:>5} {(created - started) * 1e3:>10.3f}")
    print(f"{'cold (all)':<16} {1:>5} {cold * 1e3:>10.3f}")
    warm_row, warm_median = summarise("warm run", warm)
    base_row, base_median = summarise("bare wasmtime", baseline)
    print(warm_row)
    print(base_row)
    print(f"\nwarm run / bare wasmtime (median): {warm_median / base_median:.1f}x")


def wasmtime_version() -> str:
    from importlib.metadata import version

    return version("wasmtime")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    options = parser.parse_args()
    asyncio.run(measure(options.runs))


if __name__ == "__main__":
    main()

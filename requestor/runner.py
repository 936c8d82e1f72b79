"""``golem requestor run SCRIPT [ARGS]``: run a yapapi script against this node's requestor daemon.

Sets ``YAGNA_APPKEY`` and ``YAGNA_API_URL``, puts our ``gftp`` first on ``PATH`` and, if no daemon
answers at the configured address, starts one for the duration of the script (and stops it after).
The app key is a dedicated one (``golem-run``) whose secret is kept in ``<data dir>/run.appkey``
(mode 0600, like the keystore password), so repeated runs do not pile up keys.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from market.core.errors import GolemError
from requestor.appkeys import AppKeyStore
from requestor.config import RequestorConfig

RUN_KEY_NAME = "golem-run"
START_TIMEOUT = 60.0


class RunnerError(GolemError):
    """The script could not be started (no daemon, no key)."""


def run_key(config: RequestorConfig, identity: str, store: AppKeyStore) -> str:
    """The secret of the ``golem-run`` app key, creating the key on first use."""
    path = config.data_dir / "run.appkey"
    if path.exists():
        return path.read_text().strip()
    _, secret = store.create(f"{RUN_KEY_NAME}-{int(time.time())}", identity)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    return secret


def daemon_answers(url: str, key: str) -> bool:
    """True if a requestor daemon at ``url`` accepts ``key``."""
    request = urllib.request.Request(f"{url}/me", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise RunnerError(
                f"the daemon at {url} refuses this node's run key; is it another node's?"
            ) from exc
        return False
    except OSError:
        return False


def start_daemon(config: RequestorConfig, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``golem requestor serve`` for this config; return it and the URL it listens on."""
    command = [
        sys.executable, "-c", "from market.cli import main; main()", "requestor", "serve",
        "--data-dir", str(config.data_dir), "--host", config.host, "--port", str(config.port),
        "--market", config.market_url,
    ]  # fmt: skip
    log = log_path.open("ab")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log)
    log.close()
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            break
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            return proc, found.group(1)
    proc.kill()
    raise RunnerError(f"the requestor daemon did not start; see {log_path}")


def stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def script_environment(url: str, key: str, platform: str | None = None) -> dict[str, str]:
    """The script's environment; ``platform`` (the daemon's default, ``erc20-holesky-tglm``) sets
    yapapi's ``YAGNA_PAYMENT_DRIVER``/``YAGNA_PAYMENT_NETWORK`` unless the caller already chose."""
    env = dict(os.environ)
    env["YAGNA_APPKEY"] = key
    env["YAGNA_API_URL"] = url
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if platform is not None:
        driver, network = platform.split("-")[:2]
        env.setdefault("YAGNA_PAYMENT_DRIVER", driver)
        env.setdefault("YAGNA_PAYMENT_NETWORK", network)
    return env

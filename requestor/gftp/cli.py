"""The ``gftp`` command yapapi starts: ``gftp server`` speaks JSON-RPC 2.0 over stdio.

yapapi writes one request per line on stdin and reads one answer per line from stdout, one call at a
time. Each call is passed on to the requestor daemon's ``/gftp-api/v1`` (base URL from
``YAGNA_API_URL``, key from ``YAGNA_APPKEY``), which shares the files with providers over the market
relay. Nothing but answers is ever written to stdout; diagnostics go to stderr.

When yapapi calls ``shutdown`` (or closes stdin), every URL this process opened is closed, the way
the files of Golem's own gftp stop being served when its process ends.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from typing import IO, Any

import click

VERSION = "0.7.3"
"""The gftp version we speak; 0.7.3 or later makes yapapi close URLs it no longer needs."""

DEFAULT_API_URL = "http://127.0.0.1:7465"
API_PREFIX = "/gftp-api/v1"

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
SERVER_ERROR = -32000


class RpcError(Exception):
    """A JSON-RPC error answer: ``code`` and a message that tells the user what to do."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class DaemonClient:
    """Calls the requestor daemon's gftp API; every failure becomes an :class:`RpcError`."""

    def __init__(self, base_url: str, app_key: str | None, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.app_key = app_key
        self.timeout = timeout

    def post(self, path: str, body: dict[str, Any], timeout: float | None = None) -> Any:
        if not self.app_key:
            raise RpcError(SERVER_ERROR, "YAGNA_APPKEY is not set; run the script with `golem requestor run`")
        url = f"{self.base_url}{API_PREFIX}{path}"
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.app_key}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            with exc:
                message = _error_message(exc.read())
            if exc.code == 401:
                raise RpcError(
                    SERVER_ERROR,
                    f"the requestor daemon at {self.base_url} refused the app key in YAGNA_APPKEY "
                    "(HTTP 401); get a valid one with `golem requestor app-key`",
                ) from None
            raise RpcError(
                SERVER_ERROR, message or f"the requestor daemon answered HTTP {exc.code}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RpcError(
                SERVER_ERROR,
                f"cannot reach the requestor daemon at {self.base_url} ({reason}); "
                "is `golem requestor serve` running, and is YAGNA_API_URL right?",
            ) from None
        except ValueError:
            raise RpcError(SERVER_ERROR, "the requestor daemon sent an answer that is not JSON") from None


def _error_message(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace").strip()
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return ""


class GftpServer:
    """The JSON-RPC methods of ``gftp server``, over a :class:`DaemonClient`."""

    def __init__(self, daemon: DaemonClient) -> None:
        self.daemon = daemon
        self.opened: list[str] = []
        self.stopped = False

    def call(self, method: str, params: Any) -> Any:
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise RpcError(INVALID_PARAMS, "params must be an object of named parameters")
        match method:
            case "version":
                return VERSION
            case "publish":
                files = params.get("files")
                if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
                    raise RpcError(INVALID_PARAMS, "publish needs files: a list of paths")
                links = self.daemon.post("/publish", {"files": files})
                self.opened.extend(link["url"] for link in links)
                return links
            case "receive":
                output = params.get("output_file")
                if not isinstance(output, str):
                    raise RpcError(INVALID_PARAMS, "receive needs output_file: a path")
                link = self.daemon.post("/receive", {"output_file": output})
                self.opened.append(link["url"])
                return link
            case "upload":
                file, url = params.get("file"), params.get("url")
                if not isinstance(file, str) or not isinstance(url, str):
                    raise RpcError(INVALID_PARAMS, "upload needs file (a path) and url")
                self.daemon.post("/upload", {"file": file, "url": url}, timeout=3600.0)
                return None
            case "close":
                urls = params.get("urls")
                if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
                    raise RpcError(INVALID_PARAMS, "close needs urls: a list of URLs")
                statuses = self.daemon.post("/close", {"urls": urls})
                self.opened = [u for u in self.opened if u not in urls]
                return statuses
            case "shutdown":
                self.close_opened()
                self.stopped = True
                return "ok"
            case _:
                raise RpcError(METHOD_NOT_FOUND, f"gftp has no method {method!r}")

    def close_opened(self) -> None:
        if not self.opened:
            return
        urls, self.opened = self.opened, []
        try:
            self.daemon.post("/close", {"urls": urls})
        except RpcError as exc:
            print(f"gftp: could not close {len(urls)} URL(s): {exc.message}", file=sys.stderr)

    def answer(self, line: str) -> dict[str, Any] | None:
        """The answer to one request line, or None for a notification (a request without id)."""
        try:
            request = json.loads(line)
        except ValueError:
            return _failure(None, PARSE_ERROR, "parse error: the line is not JSON")
        if not isinstance(request, dict):
            return _failure(None, INVALID_REQUEST, "invalid request: not a JSON object")
        request_id = request.get("id")
        method = request.get("method")
        if not isinstance(method, str):
            return _failure(request_id, INVALID_REQUEST, "invalid request: no method")
        try:
            result = self.call(method, request.get("params"))
        except RpcError as exc:
            return _failure(request_id, exc.code, exc.message)
        except (KeyError, TypeError):
            return _failure(request_id, SERVER_ERROR, "the requestor daemon sent an unexpected answer")
        if "id" not in request:
            return None
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    def serve(self, stdin: IO[str], stdout: IO[str]) -> None:
        try:
            for line in stdin:
                if not line.strip():
                    continue
                reply = self.answer(line)
                if reply is not None:
                    stdout.write(json.dumps(reply) + "\n")
                    stdout.flush()
                if self.stopped:
                    return
        finally:
            self.close_opened()


def _failure(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(VERSION, prog_name="gftp", message="%(prog)s %(version)s")
def cli() -> None:
    """Golem file transfer: shares a yapapi script's files with providers through the requestor daemon."""


@cli.command()
def server() -> None:
    """Serve JSON-RPC 2.0 on stdin/stdout, one object per line (what yapapi starts)."""
    daemon = DaemonClient(os.environ.get("YAGNA_API_URL") or DEFAULT_API_URL, os.environ.get("YAGNA_APPKEY"))
    gftp = GftpServer(daemon)
    try:
        gftp.serve(sys.stdin, sys.stdout)
    except KeyboardInterrupt:
        gftp.close_opened()
        sys.exit(130)


def main() -> None:
    cli()

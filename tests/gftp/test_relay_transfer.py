"""gftp over a real market node: a requestor's FileShare and a provider's RelayGftpResolver."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from exeunits.gftp import (
    CHUNK_BYTES,
    M_UPLOAD_ABORT,
    M_UPLOAD_BEGIN,
    M_UPLOAD_END,
    M_UPLOAD_SYNC,
    UPLOAD_CHANNEL,
    FramePacer,
    GftpError,
    RelayGftpResolver,
    frame_channel,
    make_url,
    new_token,
)
from exeunits.transfer import TransferService
from market.client import MarketClient, RelayRpcError
from market.core.identity import Identity
from market.hub.server import MarketNodeConfig
from requestor.gftp import FileShare, InvalidPathError
from tests.gftp.conftest import Pair, open_pair

SIZES = [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES + 1, 5 * 1024 * 1024]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".gftp-part"))


@pytest.mark.parametrize("size", SIZES)
async def test_download_is_byte_identical(pair: Pair, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    src = tmp_path / "input.bin"
    src.write_bytes(data)
    [(file, url)] = pair.share.publish([src])
    assert file == src
    assert url.startswith(f"gftp://{pair.requestor.node_id}/")

    dest = tmp_path / "fetched.bin"
    await pair.resolver.download(url, dest)
    assert dest.read_bytes() == data


async def test_download_with_many_small_windows_in_flight(pair: Pair, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    src = tmp_path / "input.bin"
    src.write_bytes(data)
    [(_, url)] = pair.share.publish([src])
    resolver = RelayGftpResolver(
        pair.provider_router, chunk_bytes=CHUNK_BYTES, window_bytes=CHUNK_BYTES, windows_in_flight=6
    )
    dest = tmp_path / "fetched.bin"
    await resolver.download(url, dest)
    assert dest.read_bytes() == data


@pytest.mark.parametrize("size", SIZES)
async def test_upload_lands_at_the_receive_path(pair: Pair, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    src = tmp_path / "result.bin"
    src.write_bytes(data)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "received.bin"
    file, url = pair.share.receive(target)
    assert file == target

    await pair.resolver.upload(src, url)
    assert target.read_bytes() == data
    assert _leftovers(out_dir) == []


async def test_upload_replaces_an_existing_output_file(pair: Pair, tmp_path: Path) -> None:
    # yapapi's receive hands over an existing empty temp file as the output path.
    target = tmp_path / "yapapi_xyz"
    target.write_bytes(b"")
    _, url = pair.share.receive(target)
    src = tmp_path / "src"
    src.write_bytes(b"result")
    await pair.resolver.upload(src, url)
    assert target.read_bytes() == b"result"


async def test_unknown_and_guessed_tokens_are_not_found(pair: Pair, tmp_path: Path) -> None:
    src = tmp_path / "secret.txt"
    src.write_bytes(b"top secret")
    pair.share.publish([src])
    guessed = make_url(pair.requestor.node_id, new_token())
    dest = tmp_path / "dest"
    dest.write_bytes(b"")  # TransferService hands the resolver an existing temp file

    with pytest.raises(GftpError) as download:
        await pair.resolver.download(guessed, dest)
    assert download.value.code == "not_found"
    assert "no file is published" in str(download.value)
    assert not dest.exists()

    with pytest.raises(GftpError) as upload:
        await pair.resolver.upload(src, guessed)
    assert upload.value.code == "not_found"
    assert "no receive slot" in str(upload.value)
    assert src.read_bytes() == b"top secret"


async def test_malformed_and_foreign_urls(pair: Pair, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    for url in ["gftp://not-a-node/abc", f"gftp://{pair.requestor.node_id}/../etc", "http://x/y"]:
        with pytest.raises(GftpError) as bad:
            await pair.resolver.download(url, dest)
        assert bad.value.code == "bad_request"
    offline = make_url(Identity.generate().node_id, new_token())
    with pytest.raises(GftpError) as unreachable:
        await pair.resolver.download(offline, dest)
    assert unreachable.value.code == "not_connected"


async def test_upload_to_a_published_file_is_refused(pair: Pair, tmp_path: Path) -> None:
    src = tmp_path / "input.txt"
    src.write_bytes(b"original")
    [(_, url)] = pair.share.publish([src])
    evil = tmp_path / "evil.txt"
    evil.write_bytes(b"overwritten")

    with pytest.raises(GftpError) as refused:
        await pair.resolver.upload(evil, url)
    assert refused.value.code == "forbidden"
    assert "read-only" in str(refused.value)
    assert src.read_bytes() == b"original"
    assert _leftovers(tmp_path) == []


async def test_hash_mismatch_writes_nothing(pair: Pair, tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    _, url = pair.share.receive(target)
    token = url.rsplit("/", 1)[1]
    router, to = pair.provider_router, pair.requestor.node_id
    data = os.urandom(CHUNK_BYTES + 10)

    begun = await router.call(to, M_UPLOAD_BEGIN, {"token": token, "size": len(data)})
    transfer_id = begun["transfer_id"]
    await pair.provider.send_bytes(to, data[:CHUNK_BYTES], frame_channel(UPLOAD_CHANNEL, transfer_id, 0))
    await pair.provider.send_bytes(
        to, data[CHUNK_BYTES:], frame_channel(UPLOAD_CHANNEL, transfer_id, CHUNK_BYTES)
    )
    wrong = hashlib.sha3_224(b"something else").hexdigest()
    with pytest.raises(RelayRpcError) as mismatch:
        await router.call(
            to, M_UPLOAD_END, {"transfer_id": transfer_id, "size": len(data), "sha3_224": wrong}
        )
    assert mismatch.value.code == "integrity"
    assert "sha3-224 mismatch" in str(mismatch.value)
    assert not target.exists()
    assert _leftovers(tmp_path) == []
    # The transfer is gone: it cannot be finished with the right hash afterwards.
    right = hashlib.sha3_224(data).hexdigest()
    with pytest.raises(RelayRpcError) as gone:
        await router.call(
            to, M_UPLOAD_END, {"transfer_id": transfer_id, "size": len(data), "sha3_224": right}
        )
    assert gone.value.code == "not_found"
    assert not target.exists()


async def test_out_of_order_and_oversized_frames_fail_the_upload(pair: Pair, tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    _, url = pair.share.receive(target)
    token = url.rsplit("/", 1)[1]
    router, to = pair.provider_router, pair.requestor.node_id

    begun = await router.call(to, M_UPLOAD_BEGIN, {"token": token, "size": 10})
    await pair.provider.send_bytes(to, b"x" * 5, frame_channel(UPLOAD_CHANNEL, begun["transfer_id"], 5))
    with pytest.raises(RelayRpcError) as skipped:
        await router.call(to, M_UPLOAD_SYNC, {"transfer_id": begun["transfer_id"], "offset": 5})
    assert skipped.value.code == "integrity" and "out of order" in str(skipped.value)

    begun = await router.call(to, M_UPLOAD_BEGIN, {"token": token, "size": 10})
    await pair.provider.send_bytes(to, b"x" * 11, frame_channel(UPLOAD_CHANNEL, begun["transfer_id"], 0))
    with pytest.raises(RelayRpcError) as oversized:
        await router.call(
            to,
            M_UPLOAD_END,
            {
                "transfer_id": begun["transfer_id"],
                "size": 10,
                "sha3_224": hashlib.sha3_224(b"x" * 10).hexdigest(),
            },
        )
    assert oversized.value.code == "integrity" and "declared" in str(oversized.value)
    assert not target.exists()
    assert _leftovers(tmp_path) == []


async def test_frames_from_another_node_are_ignored(pair: Pair, tmp_path: Path) -> None:
    intruder = MarketClient(pair.market.ws_url, Identity.generate(), "intruder", request_timeout=5.0)
    await intruder.connect(timeout=5.0)
    try:
        target = tmp_path / "out.bin"
        _, url = pair.share.receive(target)
        token = url.rsplit("/", 1)[1]
        router, to = pair.provider_router, pair.requestor.node_id
        data = b"honest bytes"
        begun = await router.call(to, M_UPLOAD_BEGIN, {"token": token, "size": len(data)})
        channel = frame_channel(UPLOAD_CHANNEL, begun["transfer_id"], 0)
        await intruder.send_bytes(to, b"EVIL", channel)
        await pair.provider.send_bytes(to, data, channel)
        digest = hashlib.sha3_224(data).hexdigest()
        await router.call(
            to, M_UPLOAD_END, {"transfer_id": begun["transfer_id"], "size": len(data), "sha3_224": digest}
        )
        assert target.read_bytes() == data
    finally:
        await intruder.close()


async def test_closed_urls_are_not_found(pair: Pair, tmp_path: Path) -> None:
    src = tmp_path / "input.txt"
    src.write_bytes(b"data")
    [(_, published)] = pair.share.publish([src])
    _, slot = pair.share.receive(tmp_path / "out.txt")
    assert pair.share.close(published) and pair.share.close(slot)
    assert not pair.share.close(published)
    assert not pair.share.close(make_url(Identity.generate().node_id, new_token()))

    with pytest.raises(GftpError) as download:
        await pair.resolver.download(published, tmp_path / "dest")
    assert download.value.code == "not_found"
    with pytest.raises(GftpError) as upload:
        await pair.resolver.upload(src, slot)
    assert upload.value.code == "not_found"
    assert not (tmp_path / "out.txt").exists()


async def test_authorize_hook_restricts_who_may_fetch(pair: Pair, tmp_path: Path) -> None:
    src = tmp_path / "input.txt"
    src.write_bytes(b"data")
    [(_, url)] = pair.share.publish([src])
    _, slot = pair.share.receive(tmp_path / "out.txt")
    seen: list[tuple[str, str]] = []

    def only_nobody(sender: str, token: str) -> bool:
        seen.append((sender, token))
        return False

    pair.share.authorize = only_nobody
    with pytest.raises(GftpError) as refused:
        await pair.resolver.download(url, tmp_path / "dest")
    assert refused.value.code == "forbidden"
    with pytest.raises(GftpError) as refused_up:
        await pair.resolver.upload(src, slot)
    assert refused_up.value.code == "forbidden"
    assert seen[0] == (pair.provider.node_id, url.rsplit("/", 1)[1])
    assert not (tmp_path / "out.txt").exists()


async def test_publish_and_receive_check_their_paths(pair: Pair, tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_bytes(b"ok")
    with pytest.raises(InvalidPathError, match="absolute"):
        pair.share.publish(["relative.txt"])
    with pytest.raises(InvalidPathError, match="no such file"):
        pair.share.publish([good, tmp_path / "missing.txt"])
    with pytest.raises(InvalidPathError, match="no such file"):
        pair.share.publish([tmp_path])
    assert pair.share.published() == {}  # one bad path publishes nothing
    with pytest.raises(InvalidPathError, match="absolute"):
        pair.share.receive("out.txt")
    with pytest.raises(InvalidPathError, match="does not exist"):
        pair.share.receive(tmp_path / "nope" / "out.txt")
    with pytest.raises(InvalidPathError, match="folder"):
        pair.share.receive(tmp_path)


async def test_share_upload_to_own_slot_and_to_another_node(pair: Pair, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(CHUNK_BYTES * 2 + 3))
    own_target = tmp_path / "own.bin"
    _, own_slot = pair.share.receive(own_target)
    await pair.share.upload(src, own_slot)
    assert own_target.read_bytes() == src.read_bytes()

    # The provider node may run its own share; the requestor's share pushes to it over the relay.
    other = FileShare(pair.provider_router)
    other_target = tmp_path / "other.bin"
    _, other_slot = other.receive(other_target)
    await pair.share.upload(src, other_slot)
    assert other_target.read_bytes() == src.read_bytes()


async def test_transfer_service_moves_gftp_files_in_and_out_of_a_volume(pair: Pair, tmp_path: Path) -> None:
    """How the provider daemon wires it: RelayGftpResolver into TransferService(gftp=...)."""
    volumes = {"/golem/input": tmp_path / "vol-in", "/golem/output": tmp_path / "vol-out"}
    for folder in volumes.values():
        folder.mkdir()
    service = TransferService(gftp=pair.resolver)

    script = tmp_path / "task.json"
    script.write_bytes(b'{"frames": [1, 2, 3]}')
    [(_, task_url)] = pair.share.publish([script])
    await service.transfer(task_url, "container:/golem/input/task.json", volumes)
    assert (volumes["/golem/input"] / "task.json").read_bytes() == script.read_bytes()

    (volumes["/golem/output"] / "result.txt").write_bytes(b"rendered")
    result = tmp_path / "result.txt"
    _, result_url = pair.share.receive(result)
    await service.transfer("container:/golem/output/result.txt", result_url, volumes)
    assert result.read_bytes() == b"rendered"

    # A failed download leaves the volume as it was, with no temp file behind.
    with pytest.raises(GftpError):
        await service.transfer(
            make_url(pair.requestor.node_id, new_token()), "container:/golem/input/x", volumes
        )
    assert sorted(p.name for p in volumes["/golem/input"].iterdir()) == ["task.json"]


@pytest.mark.parametrize("paced", [True, False])
async def test_senders_stay_under_the_market_nodes_frame_rate(tmp_path: Path, paced: bool) -> None:
    """The market node drops frames over its per-session rate; the pacer keeps gftp under it."""
    chunk = 4096
    rate = FramePacer(40, 5) if paced else FramePacer(1e6, 10**6)
    config = MarketNodeConfig(port=0, max_messages_per_second=60, rate_burst=20)
    async with open_pair(
        config,
        share_options={"chunk_bytes": chunk, "pacer": rate},
        resolver_options={
            "chunk_bytes": chunk,
            "window_bytes": 8 * chunk,
            "frame_timeout": 2.0,
            "transfer_call_timeout": 3.0,
        },
        call_timeout=3.0,
    ) as paired:
        data = os.urandom(30 * chunk + 5)
        src = tmp_path / "input.bin"
        src.write_bytes(data)
        [(_, url)] = paired.share.publish([src])
        dest = tmp_path / "fetched.bin"
        if paced:
            await paired.resolver.download(url, dest)
            assert dest.read_bytes() == data
        else:
            with pytest.raises(GftpError) as dropped:
                await paired.resolver.download(url, dest)
            # Dropped chunks (or a dropped answer) fail the transfer.
            assert dropped.value.code in ("integrity", "timeout")
            assert not dest.exists()


async def test_abort_and_short_uploads_leave_nothing_behind(pair: Pair, tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    _, url = pair.share.receive(target)
    token = url.rsplit("/", 1)[1]
    router, to = pair.provider_router, pair.requestor.node_id

    begun = await router.call(to, M_UPLOAD_BEGIN, {"token": token, "size": 100})
    await pair.provider.send_bytes(to, b"x" * 50, frame_channel(UPLOAD_CHANNEL, begun["transfer_id"], 0))
    assert (await router.call(to, M_UPLOAD_SYNC, {"transfer_id": begun["transfer_id"], "offset": 50})) == {
        "received": 50
    }
    assert len(_leftovers(tmp_path)) == 1
    await router.call(to, M_UPLOAD_ABORT, {"transfer_id": begun["transfer_id"]})
    assert _leftovers(tmp_path) == []

    # Ending with fewer bytes than announced fails at once, without waiting for the rest.
    begun = await router.call(to, M_UPLOAD_BEGIN, {"token": token, "size": 100})
    await pair.provider.send_bytes(to, b"x" * 50, frame_channel(UPLOAD_CHANNEL, begun["transfer_id"], 0))
    digest = hashlib.sha3_224(b"x" * 50).hexdigest()
    with pytest.raises(RelayRpcError) as short:
        await router.call(
            to, M_UPLOAD_END, {"transfer_id": begun["transfer_id"], "size": 50, "sha3_224": digest}, timeout=2
        )
    assert short.value.code == "integrity" and "announced" in str(short.value)
    assert not target.exists()
    assert _leftovers(tmp_path) == []

    # Closing the slot mid-upload drops the partial file as well.
    begun = await router.call(to, M_UPLOAD_BEGIN, {"token": token, "size": 100})
    assert len(_leftovers(tmp_path)) == 1
    assert pair.share.close(url)
    assert _leftovers(tmp_path) == []

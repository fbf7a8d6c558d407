"""The result trees a task Pod uploads are checked member by member before anything lands."""

from __future__ import annotations

import io
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from _tars import tar_of
from sprint_orchestrator.runtime import safetar
from sprint_orchestrator.runtime.transfer import TransferServer


def test_a_plain_tree_unpacks_with_its_files_directories_and_inner_symlinks(tmp_path: Path) -> None:
    data = tar_of(
        ("dir", "./src", b""),
        ("file", "./src/a.py", b"print(1)\n"),
        ("sym", "./link", "src/a.py"),
        ("sym", "./src/up", "../link"),
    )
    count = safetar.unpack(io.BytesIO(data), tmp_path / "out")
    assert count == 4
    assert (tmp_path / "out/src/a.py").read_text() == "print(1)\n"
    assert (tmp_path / "out/link").read_text() == "print(1)\n"


@pytest.mark.parametrize(
    ("member", "words"),
    [
        (("sym", "pw", "/etc/passwd"), "absolute path"),
        (("sym", "sub/out", "../../etc"), "outside the workspace"),
        (("file", "../escape", b"x"), "'..'"),
        (("file", "/abs", b"x"), "absolute"),
        (("file", "a/../../b", b"x"), "'..'"),
        (("hard", "h", "/etc/shadow"), "hard link"),
        (("fifo", "f", b""), "special file"),
        (("dev", "d", b""), "special file"),
        (("file", ".git/config", b"x"), ".git"),
        (("file", "./.git", b"gitdir: /etc\n"), ".git"),
    ],
)
def test_a_hostile_member_refuses_the_whole_tree_and_leaves_nothing(
    tmp_path: Path, member: tuple[str, str, bytes | str], words: str
) -> None:
    data = tar_of(("file", "good.txt", b"fine"), member)
    with pytest.raises(safetar.UnsafeTar) as caught:
        safetar.unpack(io.BytesIO(data), tmp_path / "out")
    assert words in str(caught.value)
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "escape").exists()


def test_a_file_below_an_inner_symlinked_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    data = tar_of(("dir", "d", b""), ("sym", "d/s", "."), ("file", "d/s/x", b"x"))
    with pytest.raises(safetar.UnsafeTar, match="parent directory is a symlink"):
        safetar.unpack(io.BytesIO(data), tmp_path / "out")


def test_a_tree_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    data = tar_of(("file", "big", b"x" * 5000))
    with pytest.raises(safetar.UnsafeTar, match="exceeds"):
        safetar.unpack(io.BytesIO(data), tmp_path / "out", max_bytes=4096)


def test_garbage_is_not_a_tar(tmp_path: Path) -> None:
    with pytest.raises(safetar.UnsafeTar, match="not a readable tar"):
        safetar.unpack(io.BytesIO(b"\x01" * 1024), tmp_path / "out")


def test_the_endpoint_serves_a_workspace_once_and_swaps_in_a_checked_result(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / ".git").write_text("gitdir: /somewhere\n")
    (ws / "old.txt").write_text("old")
    server = TransferServer("127.0.0.1")
    try:
        token = server.grant(ws, {"workspace": ws})
        url = server.url(token)
        with (
            urllib.request.urlopen(f"{url}/workspace") as answer,
            tarfile.open(fileobj=answer, mode="r|") as tar,
        ):
            names = [m.name for m in tar]
        assert names == ["old.txt"]  # never .git
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"{url}/workspace")
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"{server.url('wrong-token')}/workspace")
        data = tar_of(("file", "new.txt", b"new"))
        put = urllib.request.Request(f"{url}/result/workspace", data=data, method="PUT")
        with urllib.request.urlopen(put) as answer:
            assert answer.status == 200
        assert sorted(p.name for p in ws.iterdir()) == [".git", "new.txt"]
        assert (ws / ".git").read_text() == "gitdir: /somewhere\n"
        with pytest.raises(urllib.error.HTTPError, match="404"):  # one upload per name
            urllib.request.urlopen(urllib.request.Request(f"{url}/result/workspace", data=data, method="PUT"))
    finally:
        server.close()


def test_the_endpoint_refuses_a_hostile_result_and_keeps_the_workspace(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "keep.txt").write_text("keep")
    server = TransferServer("127.0.0.1")
    try:
        token = server.grant(ws, {"workspace": ws})
        data = tar_of(("sym", "pw", "/etc/passwd"), ("file", "../escape", b"x"))
        put = urllib.request.Request(f"{server.url(token)}/result/workspace", data=data, method="PUT")
        with pytest.raises(urllib.error.HTTPError, match="422"):
            urllib.request.urlopen(put)
        grant = server.grant_of(token)
        assert grant is not None
        assert len(grant.refused["workspace"]) == 2
        assert sorted(p.name for p in ws.iterdir()) == ["keep.txt"]
        assert not (tmp_path / "escape").exists()
    finally:
        server.close()

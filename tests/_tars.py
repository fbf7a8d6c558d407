"""Tar streams for tests of what a Pod uploads (safetar.py's trees, ocilayer.py's layers)."""

from __future__ import annotations

import io
import tarfile

KINDS = {
    "dir": tarfile.DIRTYPE,
    "sym": tarfile.SYMTYPE,
    "hard": tarfile.LNKTYPE,
    "fifo": tarfile.FIFOTYPE,
    "dev": tarfile.CHRTYPE,
}


def tar_of(*members: tuple[str, str, bytes | str], mode: int = 0o644, uid: int = 0) -> bytes:
    """(kind, name, data-or-linkname) -> an uncompressed tar; kind: file, dir, sym, hard, fifo, dev."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for kind, name, data in members:
            info = tarfile.TarInfo(name)
            info.uid = info.gid = uid
            info.mode = mode
            if kind == "file":
                assert isinstance(data, bytes)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = KINDS[kind]
            if kind in ("sym", "hard"):
                info.linkname = str(data)
            tar.addfile(info)
    return buffer.getvalue()

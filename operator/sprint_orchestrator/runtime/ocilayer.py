"""The layer a build Pod uploads, made into an image layer without ever being unpacked.

A build Pod (podbuild.py) installs the sprint's packages into a directory and uploads it as a tar
stream; the operator streams it once, member by member, into a gzip layer blob, hashing both forms (the
blob's digest for the manifest, the uncompressed stream's `diff_id` for the image config). Nothing of it
is written to the operator's disk as files, so its paths, symlinks and modes can harm no one here; what
is checked is what the image may hold (`member_problem`):

- relative paths only, no `..`, no whiteout files (`.wh.*`: a layer may add, never delete, what its
  base image has), no devices or FIFOs; a hard link only to a file earlier in the same stream;
- symlinks as they are (they resolve inside the container, as in any package);
- every owner becomes root (0:0), set-uid, set-gid and sticky bits are dropped, and a cap on the member
  count and the uncompressed size.
"""

from __future__ import annotations

import gzip
import hashlib
import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from .safetar import UnsafeTar, path_problem

MAX_MEMBERS = 400_000
_KEEP_MODE = 0o777


@dataclass(frozen=True)
class Layer:
    path: Path
    digest: str  # sha256 of the gzip blob
    diff_id: str  # sha256 of the uncompressed tar
    size: int


class _Hashing:
    """A write-only file that hashes and counts what passes through it to `sink`."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)

    def flush(self) -> None:
        self.sink.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def normalized(name: str) -> str:
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def member_problem(member: tarfile.TarInfo, seen_files: set[str]) -> str | None:
    """Why this member may not go into the layer, or None. Pure: looks only at the member's header."""
    name = member.name
    problem = path_problem(name)
    if problem:
        return problem
    if normalized(name).split("/")[-1].startswith(".wh."):
        return f"{name!r}: a whiteout (a layer may not delete what its base image holds)"
    if member.isdir() or member.isreg() or member.issym():
        return None
    if member.islnk():
        if normalized(posixpath.normpath(member.linkname)) not in seen_files:
            return f"{name!r}: hard link to {member.linkname!r}, not a file earlier in the layer"
        return None
    return f"{name!r}: not a file, directory or link (devices and FIFOs are refused)"


def rewrite(source: IO[bytes], dest: Path, max_bytes: int) -> Layer:
    """Stream the uploaded tar `source` into the gzip layer `dest`; `UnsafeTar` names every refused
    member (then `dest` is removed)."""
    problems: list[str] = []
    seen: set[str] = set()
    total = 0
    try:
        with dest.open("wb") as raw:
            blob = _Hashing(raw)
            with gzip.GzipFile(fileobj=cast(IO[bytes], blob), mode="wb", mtime=0) as zipped:
                plain = _Hashing(zipped)
                out = cast(IO[bytes], plain)
                with (
                    tarfile.open(fileobj=source, mode="r|*") as upload,
                    tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as layer,
                ):
                    for count, member in enumerate(upload, 1):
                        problem = member_problem(member, seen)
                        if count > MAX_MEMBERS:
                            problem = f"more than {MAX_MEMBERS} members"
                        total += member.size if member.isreg() else 0
                        if total > max_bytes:
                            problem = f"more than {max_bytes} bytes"
                        if problem:
                            problems.append(problem)
                            if len(problems) > 100 or count > MAX_MEMBERS or total > max_bytes:
                                break
                            continue
                        name = normalized(member.name)
                        if not name:
                            continue  # the tree's root "."
                        _add(layer, upload, member, name, seen)
        if problems:
            raise UnsafeTar(problems)
    except (tarfile.TarError, EOFError, OSError) as exc:
        dest.unlink(missing_ok=True)
        raise UnsafeTar([f"not a readable tar stream: {exc}"]) from None
    except UnsafeTar:
        dest.unlink(missing_ok=True)
        raise
    return Layer(dest, blob.digest, plain.digest, blob.size)


def _add(
    layer: tarfile.TarFile, upload: tarfile.TarFile, member: tarfile.TarInfo, name: str, seen: set[str]
) -> None:
    clean = tarfile.TarInfo(name)
    clean.type = member.type
    clean.mode = member.mode & _KEEP_MODE
    clean.mtime = member.mtime
    clean.uid = clean.gid = 0
    clean.uname = clean.gname = "root"
    if member.issym():
        clean.linkname = member.linkname
    elif member.islnk():
        clean.linkname = normalized(posixpath.normpath(member.linkname))
    if member.isreg():
        clean.size = member.size
        layer.addfile(clean, upload.extractfile(member))
        seen.add(name)
    else:
        layer.addfile(clean)

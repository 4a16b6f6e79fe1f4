"""Finding the data file of a source: local copies first, then a checked download into a cache.

`find_file` looks for a file, in order,

1. in each entry of ``$POGM_DATA`` (``os.pathsep``-separated). An entry is a folder holding the file
   under its usual name, or the path of the file itself; a file given by path under another name is
   used only if its checksum matches (so one ``POGM_DATA`` can list files of several sources);
2. in the download cache ``~/.cache/pogm``;
3. else it fetches the file into the cache: downloads it through a temporary file whose sha256 is
   checked before the rename, or (for sets with no public download of the prepared file) runs the
   source's ``build`` function.

Every file is checked against its sha256 once per process (a result is remembered per path, size
and modification time). A source may also accept a file by its *content* (``content_ok``) when the
file's bytes cannot be reproduced exactly, e.g. an ``.npz`` rebuilt locally holds the same arrays as
the reference file but different zip timestamps.

Errors: `FileNotFoundError` names every place looked at and the fix (set ``POGM_DATA``) when the
file is absent and cannot be fetched (``download=False`` or offline); `ValueError` when a file is
found but its checksum differs (corrupt, or a different data set).

`torch_threads` runs the generating sources (``mnist-keypoints``, ``depth``) on one torch thread.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# (resolved path, size, mtime_ns) -> sha256 of the file, so each file is hashed once per process.
_HASHES: dict[tuple[str, int, int], str] = {}
# (resolved path, size, mtime_ns, expected sha256) -> True once a file was accepted by its content.
_CONTENT_OK: dict[tuple[str, int, int, str], bool] = {}

# Errors that mean "could not fetch" (no network, refused, timed out, cut off, unwritable cache).
_FETCH_ERRORS = (urllib.error.URLError, OSError, TimeoutError, EOFError, http.client.HTTPException)


def cache_dir() -> Path:
    """The download cache, ``~/.cache/pogm`` (read at each call, so ``HOME`` may change)."""
    return Path.home() / ".cache" / "pogm"


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def file_sha256(path: Path) -> str:
    """sha256 of ``path``, computed once per process for a given path, size and modification time."""
    key = _key(path)
    if key not in _HASHES:
        _HASHES[key] = sha256_of(path)
    return _HASHES[key]


def matches(path: Path, expected: str, content_ok: Callable[[Path], bool] | None = None) -> bool:
    """True if ``path`` has sha256 ``expected``, or ``content_ok(path)`` accepts its content."""
    if file_sha256(path) == expected:
        return True
    if content_ok is None:
        return False
    key = (*_key(path), expected)
    if key not in _CONTENT_OK:
        try:
            _CONTENT_OK[key] = bool(content_ok(path))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # unreadable: not the data set
            _CONTENT_OK[key] = False
    return _CONTENT_OK[key]


def verify(path: Path, expected: str, what: str, content_ok: Callable[[Path], bool] | None = None) -> None:
    """Raise `ValueError` unless ``path`` is the expected file (see `matches`)."""
    if not matches(path, expected, content_ok):
        also = " and its arrays differ from the reference ones" if content_ok is not None else ""
        raise ValueError(
            f"{path} has sha256 {file_sha256(path)}, expected {expected} ({what}){also}; the file is corrupt "
            f"or a different data set: replace it, or delete it to download it again"
        )


def _is_file_entry(p: Path) -> bool:
    """A ``POGM_DATA`` entry naming a file rather than a folder."""
    return p.is_file() or (not p.is_dir() and bool(p.suffix))


def candidate_paths(filename: str) -> list[Path]:
    """Where `find_file` looks for ``filename``, in order: ``$POGM_DATA`` entries, then the cache.

    A folder entry contributes ``folder / filename``; a file entry contributes itself.
    """
    paths = []
    for entry in os.environ.get("POGM_DATA", "").split(os.pathsep):
        if entry:
            p = Path(entry).expanduser()
            paths.append(p if _is_file_entry(p) else p / filename)
    paths.append(cache_dir() / filename)
    return paths


def download(dest: Path, url: str, expected: str | None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` through a temporary file, checking its sha256 before the rename.

    ``expected=None`` skips the check (only for callers that check the content themselves).

    Raises:
        ValueError: if the download has another sha256 (nothing is saved).
        urllib.error.URLError, OSError, TimeoutError: if the download fails.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                h.update(chunk)
                f.write(chunk)
        if expected is not None and h.hexdigest() != expected:
            raise ValueError(
                f"download of {url} has sha256 {h.hexdigest()}, expected {expected}; the server sent a "
                f"different or damaged file; not saved"
            )
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def find_file(
    filename: str,
    sha256: str,
    *,
    what: str,
    url: str | None = None,
    build: Callable[[Path], object] | None = None,
    content_ok: Callable[[Path], bool] | None = None,
    download_if_missing: bool = True,
    timeout: float = 60.0,
) -> Path:
    """The path of a verified copy of ``filename``: found locally, or fetched into the cache.

    Args:
        filename: the file's usual name (looked for in each ``$POGM_DATA`` folder and in the cache).
        sha256: the expected sha256 of the file.
        what: a few words naming the data set, for messages (e.g. "the keras mnist.npz").
        url: where to download the file from when it is not found.
        build: instead of ``url``, a function that writes the file to the path it is given (it must
            check what it writes itself); used for sets that have no public download of the file.
        content_ok: optional check accepting a file whose bytes differ from ``sha256`` but whose
            content is the reference content (e.g. a locally rebuilt ``.npz``).
        download_if_missing: allow fetching into ``~/.cache/pogm``.

    Raises:
        FileNotFoundError: if no copy is found and fetching is off or fails (e.g. offline).
        ValueError: if a copy is found under ``filename`` but is not the expected file.
    """
    candidates = candidate_paths(filename)
    for p in candidates:
        if not p.is_file():
            continue
        if p.name != filename:
            # A file named directly in POGM_DATA under another name: use it only if it is this set.
            if matches(p, sha256, content_ok):
                return p
            continue
        verify(p, sha256, what, content_ok)
        return p
    looked = ", ".join(str(p) for p in candidates)
    hint = (
        f"set POGM_DATA to a folder holding {filename} ({what}), or to the file's path "
        f"(several entries separated by {os.pathsep!r})"
    )
    if not download_if_missing:
        raise FileNotFoundError(f"{filename} not found (looked in {looked}) and download=False; {hint}")
    if url is None and build is None:
        raise FileNotFoundError(f"{filename} not found (looked in {looked}) and it cannot be downloaded; {hint}")
    dest = cache_dir() / filename
    source = url if build is None else "its original distribution"
    try:
        if build is not None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            build(dest)
        else:
            download(dest, url, sha256, timeout=timeout)
    except _FETCH_ERRORS as err:
        raise FileNotFoundError(
            f"{filename} not found (looked in {looked}) and fetching it from {source} failed ({err}); "
            f"if this machine is offline, {hint}"
        ) from err
    verify(dest, sha256, what, content_ok)
    return dest


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run the body with ``n`` torch intra-op threads, restoring the old number after.

    Sources that generate their data (``mnist-keypoints``, ``depth``) do it in cache-sized chunks of
    small element-wise operations, which gain little from threads and, on a busy 2-core machine,
    slow down several-fold with two; so they run them on one thread.
    """
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


__all__ = ["cache_dir", "candidate_paths", "download", "file_sha256", "find_file", "matches", "sha256_of", "torch_threads", "verify"]

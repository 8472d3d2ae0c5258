"""Official archives fetched once: found where a user put them by hand, else downloaded, checked.

Shared by the data sets jaxnas prepares itself (CIFAR, PTB, WikiText-2). An archive is looked for
in `<download_dir>/manual/`, `<download_dir>/` and the folder above it (for machines without
network); otherwise it is downloaded once, after a quick check that the host resolves, into a
`.partial` file that is renamed only when its MD5 matches. Every failure is one `DataError` line
that says what to do.
"""

from __future__ import annotations

import hashlib
import os
import socket
import urllib.parse
import urllib.request
from typing import Protocol

from jaxnas.data.errors import DataError


class Remote(Protocol):
    """An archive's address and checksum (`md5` "" when only its members are checked)."""

    url: str
    md5: str

    @property
    def filename(self) -> str: ...


def filename_of(url: str) -> str:
    return os.path.basename(urllib.parse.urlparse(url).path)


def md5(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def candidate_paths(archive: Remote, download_dir: str) -> list[str]:
    """Where a hand-downloaded archive is looked for, first match wins."""
    root = os.path.dirname(os.path.normpath(download_dir))
    return [os.path.join(download_dir, "manual", archive.filename), os.path.join(download_dir, archive.filename),
            os.path.join(root, archive.filename)]


def by_hand(archive: Remote, download_dir: str) -> str:
    return (f"download {archive.url} by hand and put it at {candidate_paths(archive, download_dir)[0]} "
            f"(the folder of --config.data_dir)")


def host_resolves(url: str, timeout: float = 5.0) -> bool:
    """Whether the URL's host has an address: without network this answers in seconds, where a
    download would spend minutes in retries."""
    host = urllib.parse.urlparse(url).hostname or ""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False
    finally:
        socket.setdefaulttimeout(previous)


def download(archive: Remote, download_dir: str) -> str:
    """Download the archive into `download_dir` (atomically, MD5-checked when `md5` is given); returns its path."""
    if not host_resolves(archive.url):
        raise DataError(f"no network: cannot resolve the host of {archive.url}; {by_hand(archive, download_dir)}")
    os.makedirs(download_dir, exist_ok=True)
    path = os.path.join(download_dir, archive.filename)
    partial = path + ".partial"
    try:
        with urllib.request.urlopen(archive.url, timeout=60) as response, open(partial, "wb") as f:
            while block := response.read(1 << 20):
                f.write(block)
    except OSError as e:
        if os.path.exists(partial):
            os.remove(partial)
        raise DataError(f"could not download {archive.url}: {e}; {by_hand(archive, download_dir)}") from None
    if archive.md5 and md5(partial) != archive.md5:
        os.remove(partial)
        raise DataError(f"the download of {archive.url} is damaged (MD5 mismatch); run again, or "
                        f"{by_hand(archive, download_dir)}")
    os.replace(partial, path)
    return path


def find_or_download(archive: Remote, download_dir: str) -> str:
    for path in candidate_paths(archive, download_dir):
        if os.path.isfile(path):
            return path
    return download(archive, download_dir)

"""Verified bundles: every file a bundle's ``bundle.json`` records is checked (size, then a streamed sha256) before
a session is built from it, so that a file changed after export (bytes flipped in the middle, a truncated copy)
never serves.

``python -m xstilts.serve.core.integrity FILE...`` measures what the check costs: each file hashed as the
server hashes it, from disk (the page cache dropped first) and again from memory, in wall-clock and CPU seconds
(the CPU seconds are what an idle core would take for the cached read).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from xstilts.contracts.bundle import MODEL_FILE, TOKENIZER_FILE, BundleManifest
from xstilts.contracts.hashing import file_sha256
from xstilts.errors import XstiltsError

# files a session reads; bundle.json must record each one the folder has
READ_FILES = (MODEL_FILE, MODEL_FILE + "_data", TOKENIZER_FILE)
SHOWN_DIGITS = 12


class BundleMismatch(XstiltsError):
    """A bundle's files are not the ones its ``bundle.json`` records."""


def verify_bundle(folder: Path, manifest: BundleManifest) -> None:
    """Check every file ``bundle.json`` records (sizes first, then sha256); raise :class:`BundleMismatch` on the
    first difference, naming the file and what differs."""
    recorded = manifest.files
    unrecorded = [name for name in READ_FILES if (folder / name).is_file() and name not in recorded]
    if unrecorded:
        raise BundleMismatch(
            f"bundle.json records no size and sha256 for {', '.join(unrecorded)}: re-export the bundle "
            "(or turn --verify-bundles off)"
        )
    for name, facts in sorted(recorded.items()):
        path = folder / name
        if not path.is_file():
            raise BundleMismatch(f"{name} is missing (bundle.json records it)")
        size = path.stat().st_size
        if size != facts.get("bytes"):
            raise BundleMismatch(f"{name} has {size} bytes, bundle.json records {facts.get('bytes')}")
    for name, facts in sorted(recorded.items()):
        digest = file_sha256(folder / name)
        if digest != facts.get("sha256"):
            expected = str(facts.get("sha256"))[:SHOWN_DIGITS]
            raise BundleMismatch(
                f"{name} has sha256 {digest[:SHOWN_DIGITS]}..., bundle.json records {expected}...: "
                "the file changed after export"
            )


def drop_cached(path: Path) -> None:
    """Ask the kernel to forget ``path``'s cached pages, so that the next read comes from disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def hash_seconds(path: Path) -> tuple[float, float]:
    """Wall-clock and CPU seconds to hash ``path`` as :func:`verify_bundle` does."""
    wall, cpu = time.perf_counter(), time.process_time()
    file_sha256(path)
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="what --verify-bundles costs: each file hashed from disk and cached")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for path in args.files:
        megabytes = path.stat().st_size / 1e6
        drop_cached(path)
        cold, cold_cpu = hash_seconds(path)
        warm, warm_cpu = hash_seconds(path)
        print(
            f"{path.name}: {megabytes:.0f} MB, from disk {cold:.2f} s ({megabytes / cold:.0f} MB/s, CPU "
            f"{cold_cpu:.2f} s), cached {warm:.2f} s ({megabytes / warm:.0f} MB/s, CPU {warm_cpu:.2f} s = "
            f"{megabytes / warm_cpu:.0f} MB/s)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What model control's polling compares: a bundle folder's files as they are now (names, sizes, modification
times, inodes), read without hashing, so that a poll costs a few ``stat`` calls per bundle."""

from __future__ import annotations

from pathlib import Path

Fingerprint = tuple[tuple[str, int, int, int], ...]


def fingerprint(folder: Path) -> Fingerprint:
    """Every file under ``folder`` as (relative path, bytes, modification time in ns, inode); empty when it is gone.

    Export replaces a bundle folder whole (written beside it, then renamed): new files, new inodes, even when a
    copy keeps the old modification times.
    """
    files = []
    try:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                stat = path.stat()
                files.append((path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns, stat.st_ino))
    except FileNotFoundError:  # removed while being read: as good as gone
        return ()
    return tuple(files)

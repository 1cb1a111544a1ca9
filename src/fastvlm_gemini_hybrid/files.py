"""Private files: everything under FASTVLM_HYBRID_HOME is readable by its owner only.

The home holds the result cache, the audit trail and its key, uploads kept on request and models: a
0700 directory and 0600 files, whatever the process's umask. Windows has no such modes; there these
are no-ops beyond creating what is missing.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) if needed and make it 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    with contextlib.suppress(OSError, NotImplementedError):
        if path.stat().st_mode & 0o777 != DIR_MODE:
            path.chmod(DIR_MODE)
    return path


def private_file(path: Path, *, create: bool = True) -> Path:
    """Make `path` 0600, creating it empty first when `create` and it does not exist."""
    if create and not path.exists():
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    with contextlib.suppress(FileNotFoundError, OSError, NotImplementedError):
        if path.stat().st_mode & 0o777 != FILE_MODE:
            path.chmod(FILE_MODE)
    return path


__all__ = ["DIR_MODE", "FILE_MODE", "private_dir", "private_file"]

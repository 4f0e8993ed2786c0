"""File modes of the data directory: what the broker writes is readable by its owner and group only.

Theory of operation: message bodies and password hashes must not be world-readable, whatever the
umask (RabbitMQ's data directory is 0750).  Directories the stores make are ``DIR_MODE`` (0750) and
files ``FILE_MODE`` (0640), set with ``chmod`` after creation so that a permissive umask does not
widen them and a strict one does not narrow them; :func:`tighten` brings a directory left by an
older version (which followed the umask) to the same modes at start.
"""
from __future__ import annotations

import os

DIR_MODE = 0o750
FILE_MODE = 0o640


def secure_dir(path: str) -> None:
    """Make ``path`` (and missing parents) a directory with mode DIR_MODE."""
    if not os.path.isdir(path):
        parent = os.path.dirname(os.path.abspath(path))
        if parent and not os.path.isdir(parent):
            os.makedirs(parent, exist_ok=True)  # a parent of the data directory: not ours to restrict
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:
            pass
    if os.stat(path).st_mode & 0o7777 != DIR_MODE:
        os.chmod(path, DIR_MODE)


def open_file(path: str, flags: int) -> int:
    """``os.open(path, flags | O_CREAT)`` with the file's mode FILE_MODE."""
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o7777 != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def secure_file(path: str) -> None:
    """Create ``path`` if missing, empty, with mode FILE_MODE (or set that mode if it exists)."""
    os.close(open_file(path, os.O_RDONLY))


def tighten(directory: str) -> None:
    """Set DIR_MODE on ``directory`` and its subdirectories and FILE_MODE on their files (a data
    directory written by an older version followed the umask)."""
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            p = os.path.join(root, name)
            if not os.path.islink(p) and os.stat(p).st_mode & 0o7777 != DIR_MODE:
                os.chmod(p, DIR_MODE)
        for name in files:
            p = os.path.join(root, name)
            try:
                if not os.path.islink(p) and os.stat(p).st_mode & 0o7777 != FILE_MODE:
                    os.chmod(p, FILE_MODE)
            except FileNotFoundError:  # gone meanwhile (the page store is wiped at start)
                pass


def fsync_dir(path: str) -> None:
    """fsync a directory, so that the files created, renamed or deleted in it stay so after a crash."""
    dfd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)

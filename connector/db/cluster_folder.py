"""Where an embedded cluster's folder is, and whether it may be trusted: ours, private, and
reachable by the ``postgres`` user the server runs as when we are root."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat
import tempfile
from pathlib import Path

import structlog

from connector.db.server_binaries import chown_to_postgres, runs_as_postgres
from connector.errors import ConfigError

log = structlog.get_logger(__name__)

# The name relocated clusters get in the system temp folder (see reachable).
RELOCATED_PREFIX = "connector-pg-"


def _postgres_can_enter(path: Path) -> bool:
    """Whether the ``postgres`` user may traverse every existing folder above ``path``."""
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        return True
    groups = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if "postgres" in g.gr_mem}
    for folder in [path, *path.parents]:
        if not folder.exists():
            continue
        info = folder.stat()
        if info.st_uid == entry.pw_uid:
            allowed = bool(info.st_mode & stat.S_IXUSR)
        elif info.st_gid in groups:
            allowed = bool(info.st_mode & stat.S_IXGRP)
        else:
            allowed = bool(info.st_mode & stat.S_IXOTH)
        if not allowed:
            return False
    return True


def _owner_uids() -> set[int]:
    """Who may own a cluster folder we trust: this user, and ``postgres`` when we are root."""
    uids = {os.geteuid()}
    if runs_as_postgres():
        with contextlib.suppress(KeyError):
            uids.add(pwd.getpwnam("postgres").pw_uid)
    return uids


class ForeignClusterFolder(ConfigError):
    """The cluster folder belongs to someone else or others may write it: refuse to use it."""


def check_private(folder: Path) -> None:
    """Refuse a cluster folder that is not ours: another owner, or writable by others."""
    info = folder.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise ForeignClusterFolder(f"{folder} is not a plain folder; refusing to use it")
    if info.st_uid not in _owner_uids():
        raise ForeignClusterFolder(
            f"{folder} belongs to uid {info.st_uid}, not to this user or postgres; "
            "refusing to start a database someone else prepared (remove the link to it, "
            "or run `connector db clean`)"
        )
    if info.st_mode & 0o022:
        raise ForeignClusterFolder(
            f"{folder} may be written by other users (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"refusing to use it (chmod 700 {folder} if it is yours)"
        )
    if info.st_mode & 0o077:
        # Ours, only readable by others (as earlier versions made it): close it.
        folder.chmod(0o700)


def reachable(root: Path) -> Path:
    """``root``, or a stand-in the ``postgres`` user can reach, linked from ``root``.

    As root, the server runs as ``postgres``, which cannot enter a checkout under a private
    folder such as ``/root``. Then the cluster lives in the system temp folder under a fresh,
    private name (``mkdtemp``: nobody can prepare it in advance), and ``root`` becomes a
    symlink to it: the link records the name, and every process finds the cluster through it.
    A linked folder is used only if it is still ours and private.
    """
    if root.is_symlink():
        target = root.resolve()
        if target.exists():
            check_private(target)
            return target
        root.unlink()  # the temp folder was cleared (a reboot): start a fresh cluster
    if not runs_as_postgres() or _postgres_can_enter(root.parent):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix=RELOCATED_PREFIX))
    chown_to_postgres(target)
    try:
        root.symlink_to(target, target_is_directory=True)
    except FileExistsError:
        # Another process linked its own first: use theirs, drop ours.
        target.rmdir()
        return reachable(root)
    log.warning(
        "embedded_postgres_relocated",
        reason="the postgres user cannot enter the project folder",
        root=str(target),
    )
    return target

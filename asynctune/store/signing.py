"""Signed pickles: every pickle asynctune writes carries an HMAC-SHA256 made with the user's key.

Unpickling runs code. A file's owner and mode say nothing about where it came from once a
directory was copied (`cp -r`, an archive, a colleague's share): the copy is yours. So each pickle
asynctune writes (run_spec.pkl, searcher_state.pkl, params.pkl, a dict checkpoint's
checkpoint.pkl) starts with a header and the HMAC of the rest, and nothing is unpickled whose HMAC
does not match the key of the user loading it:

    ATSIG1\\n  <32 bytes HMAC-SHA256(key, payload)>  <payload: the pickle>

The key is 32 random bytes, made on first use, kept 0600 in `$XDG_CONFIG_HOME/asynctune/key`
(`~/.config/asynctune/key`); `ASYNCTUNE_KEY_FILE` names another file (a key shared by a lab,
which then trusts each other's directories). Workers get the driver's key with each trial over
the executor's authenticated channel, so checkpoints a worker writes (also on an SSH host or a
Dask worker) verify on the driver.

A directory made with another key, or by an asynctune that did not sign (unsigned files), is
refused with `UntrustedFileError`; after reviewing it, `asynctune trust DIR` (`trust_directory`)
signs its pickles with your key, and `trust=True` loads one without the check.
"""

from __future__ import annotations

import os
import pickle
import stat
from collections.abc import Callable
from typing import IO, Any

from ..errors import UntrustedFileError
from .names import CHECKPOINT_DATA, EXPERIMENT_FILE, PARAMS_PICKLE_FILE, RUN_SPEC_FILE, SEARCHER_STATE_FILE
from .private_files import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, check_private

HEADER = b"ATSIG1\n"
_DIGEST_SIZE = 32  # SHA-256
KEY_FILE_ENV = "ASYNCTUNE_KEY_FILE"
# The pickles asynctune writes, by file name: the ones `trust_directory` signs.
SIGNED_FILE_NAMES = (RUN_SPEC_FILE, SEARCHER_STATE_FILE, PARAMS_PICKLE_FILE, CHECKPOINT_DATA)
# What marks an experiment's top directory (for the `asynctune trust DIR` hint).
_EXPERIMENT_MARKERS = (EXPERIMENT_FILE, RUN_SPEC_FILE)

_keys: dict[str, bytes] = {}  # key file -> key, read once per process
_given_key: bytes | None = None  # a worker's: the driver's key, from the trial request


def key_file() -> str:
    """Where the key is: $ASYNCTUNE_KEY_FILE, else the user's config directory."""
    named = os.environ.get(KEY_FILE_ENV)
    if named:
        return os.path.abspath(os.path.expanduser(named))
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(config, "asynctune", "key")


def signing_key() -> bytes:
    """The key this process signs and checks with: the one a worker was given, else the user's
    (created on first use)."""
    if _given_key is not None:
        return _given_key
    path = key_file()
    key = _keys.get(path)
    if key is None:
        key = _keys[path] = _read_or_create_key(path)
    return key


def use_key(key: bytes | None) -> None:
    """Sign and check with `key` in this process (a worker, with the driver's key); None: the user's."""
    global _given_key
    if key is not None and len(key) < 16:
        raise ValueError(f"a signing key must have at least 16 bytes, got {len(key)}")
    _given_key = key


def sign(payload: bytes) -> bytes:
    """`payload` with the header and its HMAC in front: what a signed file holds."""
    return HEADER + _mac(payload) + payload


def dump_signed(obj: Any, file: IO[bytes]) -> None:
    """Pickle `obj` into `file` (open for writing, seekable, at its start), signed: the pickle
    streams through the HMAC into the file, so a large checkpoint is not copied in memory."""
    import hashlib
    import hmac

    mac = hmac.new(signing_key(), digestmod=hashlib.sha256)

    class _Through:
        def write(self, data: Any) -> int:
            mac.update(data)
            return file.write(data)

    file.write(HEADER + bytes(_DIGEST_SIZE))  # the HMAC's place, filled in once the pickle is written
    pickle.dump(obj, _Through(), protocol=pickle.HIGHEST_PROTOCOL)
    file.seek(len(HEADER))
    file.write(mac.digest())


def _mac(payload: bytes) -> bytes:
    # Imported here: hashlib loads OpenSSL (tens of ms), which a worker's start need not wait for.
    import hashlib
    import hmac

    return hmac.new(signing_key(), payload, hashlib.sha256).digest()


def verified(path: str, data: bytes, *, trust: bool = False) -> bytes:
    """The payload of a signed file's `data`, if its HMAC is the one this user's key gives.

    Raises UntrustedFileError naming `path` and how to trust it, unless `trust` (then an unsigned
    file's whole content, or a signed one's payload, comes back unchecked)."""
    payload = _payload(data)
    if trust:
        return data if payload is None else payload
    if payload is None:
        raise UntrustedFileError(path, "it is not signed (written by another program, or by an asynctune "
                                 "from before signed state)", _trust_hint(path))
    digest = data[len(HEADER):len(HEADER) + _DIGEST_SIZE]
    import hmac

    if not hmac.compare_digest(digest, _mac(payload)):
        raise UntrustedFileError(path, f"its signature is not made with your key ({key_file()}): the "
                                 "directory was made by another user or machine, or the file was changed",
                                 _trust_hint(path))
    return payload


def read_verified(path: str, *, trust: bool = False) -> bytes:
    """The payload of the signed file at `path`, checked (also for owner and mode) before use."""
    check_private(path)
    with open(path, "rb") as f:
        return verified(path, f.read(), trust=trust)


def load_signed_pickle(path: str, *, trust: bool = False,
                       loads: Callable[[bytes], Any] = pickle.loads) -> Any:
    """Unpickle the signed file at `path` (with `loads`, e.g. cloudpickle.loads) after checking it."""
    return loads(read_verified(path, trust=trust))


def trust_directory(directory: str) -> list[str]:
    """Sign every pickle asynctune writes under `directory` with this user's key, after a review.

    Unsigned files (older asynctune) are signed whole; files signed with another key get this
    user's signature instead. Links are not followed. Returns the files signed.

    Example:
        >>> trust_directory("~/asynctune_results/from_alice")  # after reading what is in it
    """
    root = os.path.abspath(os.path.expanduser(directory))
    if not os.path.isdir(root) or os.path.islink(root):
        raise ValueError(f"trust: {directory} is not a directory")
    signed = []
    for parent, dirs, files in os.walk(root):  # os.walk does not descend into linked directories
        for name in files:
            path = os.path.join(parent, name)
            if name not in SIGNED_FILE_NAMES or os.path.islink(path):
                continue
            with open(path, "rb") as f:
                data = f.read()
            payload = verified(path, data, trust=True)
            _replace(path, sign(payload))
            signed.append(path)
    return sorted(signed)


def _payload(data: bytes) -> bytes | None:
    if not data.startswith(HEADER) or len(data) < len(HEADER) + _DIGEST_SIZE:
        return None
    return data[len(HEADER) + _DIGEST_SIZE:]


def _trust_hint(path: str) -> str:
    """`asynctune trust <experiment>`: the nearest directory above `path` that is an experiment."""
    here = os.path.dirname(os.path.abspath(path))
    directory = here
    while True:
        if any(os.path.exists(os.path.join(directory, marker)) for marker in _EXPERIMENT_MARKERS):
            break
        parent = os.path.dirname(directory)
        if parent == directory:
            directory = here
            break
        directory = parent
    return (f"Unpickling runs code: review what is in {directory}, then run `asynctune trust {directory}` "
            "(or pass trust=True to resume() / load_best_checkpoint())")


def _replace(path: str, data: bytes) -> None:
    """Write `data` to `path` by a rename, private."""
    staged = f"{path}.{os.getpid()}.trust"
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(staged, path)


def _read_or_create_key(path: str) -> bytes:
    """The key in `path`; made (32 random bytes, hex, 0600) if there is none yet. Two processes
    that start at once end with the same key: the file appears complete, by a hard link."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=PRIVATE_DIR_MODE, exist_ok=True)
    staged = f"{path}.{os.getpid()}.new"
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(staged, path)  # fails if another process made it first: then its key is the one
        except FileExistsError:
            pass
    finally:
        os.unlink(staged)
    return _read_key(path)


def _read_key(path: str) -> bytes:
    info = os.stat(path)
    if hasattr(os, "geteuid") and info.st_mode & (stat.S_IWGRP | stat.S_IWOTH | stat.S_IROTH):
        raise UntrustedFileError(path, f"the signing key is readable or writable by others (mode "
                                 f"{stat.S_IMODE(info.st_mode):04o}): anyone who has it can make files "
                                 "asynctune loads", f"Run: chmod 600 {path} (a key shared by a lab: chmod 640)")
    with open(path) as f:
        text = f.read().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise UntrustedFileError(path, "the signing key is not at least 16 bytes of hex",
                                 f"Move {path} away: a new key is made on next use (directories "
                                 "signed with the old one then need `asynctune trust`)")
    return key

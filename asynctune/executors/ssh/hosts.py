"""SSH host specs: `gpu1`, `user@gpu2:2222`, a dict, a `Host`, or a line of a hosts file.

A hosts file has one host per line, options as `key=value` after the address, `#` comments:

    # name is optional; it is how results and logs name the host
    gpu1                                  cpus=16 gpus=0,1
    alice@gpu2:2222  python=/opt/venv/bin/python  workdir=/scratch/alice/asynctune
    lab-a100         gpus=2  env.HF_HOME=/scratch/hf  env.OMP_NUM_THREADS=4

A file whose name ends in `.toml` holds `[[hosts]]` tables with the same keys instead.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

_ADDRESS = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?:\[(?P<ipv6>[^\]]+)\]|(?P<host>[^:\s@]+))(?::(?P<port>\d+))?$")
_KEYS = ("address", "host", "user", "port", "python", "workdir", "env", "cpus", "gpus", "name")


@dataclass(frozen=True)
class Host:
    """One machine of the pool, as ssh reaches it.

    Example:
        >>> Host.parse("alice@gpu2:2222")
        Host(address='gpu2', user='alice', port=2222, ...)
        >>> Host("gpu1", python="/opt/venv/bin/python", cpus=8, gpus=(0, 1), env={"HF_HOME": "/scratch/hf"})

    Args:
        address: Host name, IP address, or a `Host` alias of ~/.ssh/config (whose HostName,
            User, Port, IdentityFile and ProxyJump then apply).
        user: Login name (default: from ~/.ssh/config, else the local user).
        port: SSH port (default: from ~/.ssh/config, else 22).
        python: The interpreter on the host that has asynctune installed; its Python
            major.minor and asynctune version must match the driver's.
        workdir: Folder on the host for the code copy and the trials' files; `~` is the
            login's home, `$NAME` the host's variable (`$SCRATCH/asynctune`).
        env: Environment variables for the host's workers (e.g. PATH, HF_HOME); in values,
            `$NAME`, `${NAME}` and a leading `~` are the host's (`/usr/local/cuda/bin:$PATH`),
            `$$` is a literal `$`.
        cpus: CPU slots to offer (default: the CPUs the host's Python may use).
        gpus: GPUs to offer: a count (the first n) or the NVML indices to use (default: all).
        name: How the pool names this host (default: the spec, e.g. "alice@gpu2:2222"); names
            must be distinct.
    """

    address: str
    user: str | None = None
    port: int | None = None
    python: str = "python3"
    workdir: str = "~/.asynctune"
    env: Mapping[str, str] = field(default_factory=dict)
    cpus: float | None = None
    gpus: int | tuple[int, ...] | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.address, str) or not self.address or any(c.isspace() for c in self.address):
            raise ValueError(f"Host: address must be a host name without spaces, got address={self.address!r}")
        for key in ("python", "workdir", "user", "name"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"Host {self.address}: {key} must be a string, got {key}={value!r}")
        if self.cpus is not None and (isinstance(self.cpus, bool) or not isinstance(self.cpus, (int, float))):
            raise ValueError(f"Host {self.address}: cpus must be a number, got cpus={self.cpus!r}")
        if not isinstance(self.env, Mapping):
            raise ValueError(f"Host {self.address}: env must map names to strings, got env={self.env!r}")
        if self.port is not None and not (isinstance(self.port, int) and 0 < self.port < 65536):
            raise ValueError(f"Host {self.address}: port must be in 1..65535, got port={self.port!r}")
        if not self.python:
            raise ValueError(f"Host {self.address}: python must name an interpreter, got python={self.python!r}")
        if not self.workdir:
            raise ValueError(f"Host {self.address}: workdir must be a folder, got workdir={self.workdir!r}")
        if self.cpus is not None and not self.cpus > 0:
            raise ValueError(f"Host {self.address}: cpus must be > 0, got cpus={self.cpus!r}")
        gpus = self.gpus
        if isinstance(gpus, list):
            object.__setattr__(self, "gpus", gpus := tuple(gpus))
        if gpus is not None and not (
            (isinstance(gpus, int) and not isinstance(gpus, bool) and gpus >= 0)
            or (isinstance(gpus, tuple) and all(isinstance(i, int) and i >= 0 for i in gpus))
        ):
            raise ValueError(f"Host {self.address}: gpus must be a count or a list of GPU indices, got gpus={gpus!r}")
        bad = [k for k, v in self.env.items() if not isinstance(k, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)
               or not isinstance(v, str)]
        if bad:
            raise ValueError(f"Host {self.address}: env needs NAME=string entries, got bad keys {bad}")
        object.__setattr__(self, "env", dict(self.env))

    @property
    def label(self) -> str:
        """The host's name in the pool, logs and errors."""
        if self.name:
            return self.name
        address = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.user + '@' if self.user else ''}{address}{':' + str(self.port) if self.port else ''}"

    @classmethod
    def parse(cls, spec: Host | str | Mapping[str, Any]) -> Host:
        """A Host from `[user@]host[:port]`, a dict of the constructor's arguments, or a Host."""
        if isinstance(spec, Host):
            return spec
        if isinstance(spec, str):
            return cls(**_split_address(spec))
        if isinstance(spec, Mapping):
            unknown = sorted(str(k) for k in spec if k not in _KEYS)
            if unknown:
                raise ValueError(f"host {dict(spec)!r}: unknown keys {unknown}; known: {', '.join(_KEYS)}")
            options = dict(spec)
            address = options.pop("address", None) or options.pop("host", None)
            options.pop("host", None)
            if not isinstance(address, str):
                raise ValueError(f"host {dict(spec)!r}: needs 'host' (or 'address'), e.g. 'gpu1' or 'user@gpu2:2222'")
            parts = _split_address(address)
            for key in ("user", "port"):
                if options.get(key) is None and parts[key] is not None:
                    options[key] = parts[key]
            return cls(parts["address"], **options)
        raise ValueError(f"a host must be 'user@host:port', a dict or a Host, got {spec!r}")


def _split_address(spec: str) -> dict[str, Any]:
    match = _ADDRESS.match(spec.strip())
    if match is None:
        raise ValueError(f"host {spec!r}: expected [user@]host[:port] (IPv6 as [addr]:port)")
    port = match["port"]
    return {"address": match["ipv6"] or match["host"], "user": match["user"], "port": int(port) if port else None}


def parse_hosts(hosts: Iterable[Host | str | Mapping[str, Any]]) -> list[Host]:
    """Hosts from specs, checking that their pool names are distinct."""
    if isinstance(hosts, (str, Mapping, Host)):
        hosts = [hosts]
    parsed = [Host.parse(h) for h in hosts]
    if not parsed:
        raise ValueError("hosts must name at least one host, got an empty list")
    labels = [h.label for h in parsed]
    duplicates = sorted({n for n in labels if labels.count(n) > 1})
    if duplicates:
        raise ValueError(f"hosts: names must be distinct, got {duplicates} more than once (give each a name=)")
    return parsed


def read_hosts_file(path: str | os.PathLike[str]) -> list[Host]:
    """The hosts of a hosts file (see the module docstring for its format). An error names the
    file and the line (or the `[[hosts]]` table) at fault."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        text = f.read().decode(errors="replace")
    if path.endswith(".toml"):
        entries = _toml_entries(path, text)
    else:
        entries = [(f"{path}:{number}", line) for number, line in enumerate(text.splitlines(), 1)]
    hosts: list[Host] = []
    where_named: dict[str, str] = {}
    for where, entry in entries:
        try:
            if isinstance(entry, str):
                words = shlex.split(entry, comments=True)
                if not words:
                    continue
                entry = _parse_line(words)
            host = Host.parse(entry)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if host.label in where_named:
            raise ValueError(f"{where}: host {host.label} is already named at {where_named[host.label]}; "
                             f"names must be distinct (give one a name=)")
        where_named[host.label] = where
        hosts.append(host)
    if not hosts:
        raise ValueError(f"{path}: names no host")
    return hosts


def _toml_entries(path: str, text: str) -> list[tuple[str, Any]]:
    try:
        import tomllib
    except ImportError:  # Python 3.10: the same parser, as the tomli backport
        import tomli as tomllib
    try:
        tables = tomllib.loads(text).get("hosts")
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    if not isinstance(tables, list):
        raise ValueError(f"{path}: expected [[hosts]] tables")
    return [(f"{path}: [[hosts]] table {number}", table) for number, table in enumerate(tables, 1)]


def parse_host_line(line: str) -> dict[str, Any]:
    """One host as a hosts file's line gives it, e.g. "gpu1 python=/opt/venv/bin/python port=2222"."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError as exc:  # shlex's "No closing quotation" says nothing of where
        raise ValueError(f"host spec {line!r}: {exc}") from None
    if not words:
        raise ValueError(f"empty host spec: {line!r}")
    return _parse_line(words)


def _parse_line(words: list[str]) -> dict[str, Any]:
    spec: dict[str, Any] = {"host": words[0]}
    env: dict[str, str] = {}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep:
            raise ValueError(f"expected key=value after the host, got {word!r}")
        if key.startswith("env."):
            env[key[4:]] = value
        elif key == "cpus":
            spec[key] = _number(value, float, word, "a number of CPU slots, e.g. cpus=8")
        elif key == "port":
            spec[key] = _number(value, int, word, "a port number, e.g. port=2222")
        elif key == "gpus":
            expected = "a count (gpus=2) or GPU indices (gpus=0,1; one index alone: gpus=3,)"
            spec[key] = (tuple(_number(i, int, word, expected) for i in value.split(",") if i)
                         if "," in value or value == "" else _number(value, int, word, expected))
        elif key in ("user", "python", "workdir", "name"):
            spec[key] = value
        else:
            raise ValueError(f"unknown option {key!r}; known: user, port, python, workdir, cpus, gpus, name, env.NAME")
    if env:
        spec["env"] = env
    return spec


def _number(text: str, kind: type, word: str, expected: str) -> Any:
    """`text` (of the option `word`) as an int or float; else an error naming the option."""
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{word}: expected {expected}") from None

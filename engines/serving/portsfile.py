"""`ports.toml` at the workspace root: which model each port serves (`trainledger ports up`).

```toml
[[port]]
port = 9001
model = "lvm-amn"           # a registry model name; or passthrough = true (no model)
# passthrough = true
# dim = 64                  # passthrough only: the vector size it checks
# host = "127.0.0.1"
# fault = ["v3:error=0.3"]  # testing aid: injected failures for one version
```

A missing file is no ports. Anything else that is not exactly this (a duplicate port, a port
out of range, an invalid model name, model and passthrough both or neither, a key we do not
know, a bad fault) is refused whole with a PortsFileError naming the entry, its line and the
field: a half-read ports file must never start half the ports.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Any

from trainledger.engines.registry.types import RegistryUsageError
from trainledger.engines.safeio import FileTooLarge, NotRegularFile, read_regular
from trainledger.engines.serving.faults import Fault, parse_fault
from trainledger.engines.workspace import Workspace, atomic_write_bytes

MAX_PORT = 65535
MAX_DIM = 1 << 16
FILE_LIMIT = 1 << 20  # a ports file is a few hundred bytes; past this it is refused, not read
DEFAULT_HOST = "127.0.0.1"
KEYS = ("port", "model", "passthrough", "dim", "host", "fault")
_HEADER = re.compile(r"^\s*\[\[\s*port\s*\]\]")
_HOST = re.compile(r"[A-Za-z0-9.:\[\]_-]{1,253}")


class PortsFileError(ValueError):
    """ports.toml cannot be used as it is; the message names the entry, line and field."""


@dataclass(frozen=True)
class PortSpec:
    port: int
    model: str | None = None  # None: the passthrough port
    passthrough: bool = False
    dim: int | None = None  # passthrough only
    host: str = DEFAULT_HOST
    faults: tuple[str, ...] = ()  # "VERSION:error=F,latency_ms=MS", each checked by parse_fault

    def fault_map(self) -> dict[str, Fault]:
        return dict(parse_fault(text) for text in self.faults)

    def describe(self) -> str:
        """`lvm-amn` or `passthrough (dim 64)`: what the port serves, in a few words."""
        if self.passthrough:
            return "passthrough" + (f" (dim {self.dim})" if self.dim else "")
        return str(self.model)

    def to_json(self) -> dict[str, Any]:
        return {"port": self.port, "model": self.model, "passthrough": self.passthrough, "dim": self.dim,
                "host": self.host, "faults": list(self.faults)}  # fmt: skip


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_port(value: Any) -> int:
    """`value` as a port number (1-65535), else ValueError."""
    if not _is_int(value) or not 0 < value <= MAX_PORT:
        raise ValueError(f"a port is a whole number from 1 to {MAX_PORT}, not {value!r}")
    return int(value)


def check_host(value: Any) -> str:
    """A host name or address as it may go on a command line (no spaces, no controls), else ValueError."""
    if not isinstance(value, str) or not _HOST.fullmatch(value) or value.startswith("-"):
        raise ValueError(f"host must be a host name or an IP address, not {value!r}")
    return value


def check_model(value: Any) -> str:
    from trainledger.engines.registry.store import check_name

    if not isinstance(value, str):
        raise ValueError(f"model must be a registry model name (a string), not {value!r}")
    try:
        return check_name(value, "model name")
    except RegistryUsageError as exc:
        raise ValueError(str(exc)) from None


def check_faults(texts: Any) -> tuple[str, ...]:
    """Fault texts (one per version), each checked by parse_fault; ValueError naming the bad one."""
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list | tuple) or not all(isinstance(t, str) for t in texts):
        raise ValueError('fault must be a list of strings like ["v3:error=0.3,latency_ms=200"]')
    seen: set[str] = set()
    for text in texts:
        version, _fault = parse_fault(text)
        if version in seen:
            raise ValueError(f"two faults for version {version!r}")
        seen.add(version)
    return tuple(texts)


def spec_from_table(entry: Any) -> PortSpec:
    """One `[[port]]` table as a PortSpec; ValueError naming the field that is wrong."""
    if not isinstance(entry, dict):
        raise ValueError("each port is a [[port]] table")
    unknown = sorted(set(entry) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (known: {', '.join(KEYS)})")
    if "port" not in entry:
        raise ValueError("port: missing (port = 9001)")
    try:
        port = check_port(entry["port"])
    except ValueError as exc:
        raise ValueError(f"port: {exc}") from None
    passthrough = entry.get("passthrough", False)
    if not isinstance(passthrough, bool):
        raise ValueError(f"passthrough must be true or false, not {passthrough!r}")
    model = entry.get("model")
    if model is not None and passthrough:
        raise ValueError("model and passthrough = true together: a port serves a model or is the passthrough")
    if model is None and not passthrough:
        raise ValueError('neither model nor passthrough: give model = "NAME" or passthrough = true')
    if model is not None:
        try:
            model = check_model(model)
        except ValueError as exc:
            raise ValueError(f"model: {exc}") from None
    dim = entry.get("dim")
    if dim is not None:
        if not passthrough:
            raise ValueError("dim is for the passthrough port only (a model's size comes from the model)")
        if not _is_int(dim) or not 0 < dim <= MAX_DIM:
            raise ValueError(f"dim must be a whole number from 1 to {MAX_DIM}, not {dim!r}")
    try:
        host = check_host(entry.get("host", DEFAULT_HOST))
    except ValueError as exc:
        raise ValueError(f"host: {exc}") from None
    try:
        faults = check_faults(entry.get("fault", []))
    except ValueError as exc:
        raise ValueError(f"fault: {exc}") from None
    return PortSpec(port=port, model=model, passthrough=passthrough, dim=dim, host=host, faults=faults)


def parse_ports(text: str, source: str = "ports.toml") -> list[PortSpec]:
    """The port specs of ports.toml's text, in file order; PortsFileError on anything wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message gives the line and column
        raise PortsFileError(f"{source}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"port"})
    if unknown:
        raise PortsFileError(f"{source}: unknown top-level key {unknown[0]!r}: each port is a [[port]] table")
    entries = data.get("port", [])
    if not isinstance(entries, list):
        raise PortsFileError(f"{source}: `port` must be [[port]] tables, one per port")
    headers = [n for n, line in enumerate(text.splitlines(), 1) if _HEADER.match(line)]
    lines = headers if len(headers) == len(entries) else [None] * len(entries)
    specs: list[PortSpec] = []
    seen: dict[int, int] = {}
    for i, (entry, line) in enumerate(zip(entries, lines), 1):
        where = f"{source}: port entry {i}" + (f" (line {line})" if line else "")
        if isinstance(entry, dict) and _is_int(entry.get("port")):
            where += f", port {entry['port']}"
        try:
            spec = spec_from_table(entry)
        except ValueError as exc:
            raise PortsFileError(f"{where}: {exc}") from None
        if spec.port in seen:
            raise PortsFileError(f"{where}: port {spec.port} is already entry {seen[spec.port]}: one entry per port")
        seen[spec.port] = i
        specs.append(spec)
    return specs


def read_ports(ws: Workspace) -> list[PortSpec]:
    """What the workspace's ports.toml says; [] without one. PortsFileError on bad content."""
    path = ws.ports_file
    try:
        raw = read_regular(path, FILE_LIMIT)
    except FileNotFoundError:
        return []
    except (NotRegularFile, FileTooLarge) as exc:
        raise PortsFileError(f"{path}: {exc}") from None
    except OSError as exc:
        raise PortsFileError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PortsFileError(f"{path}: not UTF-8 text") from None
    return parse_ports(text, path.name)


def _toml_str(value: str) -> str:
    out = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in out) + '"'


def dump_ports(specs: list[PortSpec]) -> str:
    """ports.toml text for `specs` (each checked first: what is written reads back the same)."""
    lines = ["# trainledger ports: which model each port serves (trainledger ports up)"]
    seen: set[int] = set()
    for spec in specs:
        checked = spec_from_table(spec_table(spec))  # ValueError on a spec read_ports would refuse
        if checked.port in seen:
            raise ValueError(f"port {checked.port} twice: one entry per port")
        seen.add(checked.port)
        lines += ["", "[[port]]", f"port = {spec.port}"]
        lines.append("passthrough = true" if spec.passthrough else f"model = {_toml_str(str(spec.model))}")
        if spec.dim is not None:
            lines.append(f"dim = {spec.dim}")
        if spec.host != DEFAULT_HOST:
            lines.append(f"host = {_toml_str(spec.host)}")
        if spec.faults:
            lines.append(f"fault = [{', '.join(_toml_str(f) for f in spec.faults)}]")
    return "\n".join(lines) + "\n"


def spec_table(spec: PortSpec) -> dict[str, Any]:
    """`spec` as the [[port]] table read_ports would read it from."""
    table: dict[str, Any] = {"port": spec.port}
    if spec.passthrough:
        table["passthrough"] = True
    if spec.model is not None:
        table["model"] = spec.model
    if spec.dim is not None:
        table["dim"] = spec.dim
    table["host"] = spec.host
    if spec.faults:
        table["fault"] = list(spec.faults)
    return table


def write_ports(ws: Workspace, specs: list[PortSpec]) -> None:
    """Replace ports.toml with `specs`, atomically (ValueError, nothing written, on a bad spec)."""
    atomic_write_bytes(ws.ports_file, dump_ports(specs).encode("utf-8"))

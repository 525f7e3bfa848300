"""ports.toml: what `ports up` reads, refused whole (naming entry, line and field) when anything is wrong."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trainledger.engines.serving.faults import Fault
from trainledger.engines.serving.portsfile import PortsFileError, PortSpec, parse_ports, read_ports, write_ports
from trainledger.engines.workspace import PORTS_FILE, Workspace, classify_change, init_workspace


def test_a_new_workspace_has_a_commented_template_with_no_ports(ws: Workspace) -> None:
    assert ws.ports_file.name == PORTS_FILE == "ports.toml"
    text = ws.ports_file.read_text()
    assert "[[port]]" in text and all(line.startswith("#") for line in text.splitlines() if line.strip())
    assert read_ports(ws) == []
    assert classify_change(ws.root, ws.ports_file).kind == "ports"


def test_no_file_is_no_ports_and_an_old_ports_json_is_ignored(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    ws.ports_file.unlink()
    (ws.root / "ports.json").write_text('{"schema": "trainledger-ports/1", "ports": []}\n')
    assert read_ports(ws) == []
    init_workspace(ws.root)  # adopting an older workspace writes the template beside it
    assert read_ports(ws) == [] and (ws.root / "ports.json").exists()


def test_entries_read_in_file_order_with_defaults() -> None:
    specs = parse_ports(
        "[[port]]\nport = 9002\nmodel = \"lvm-gru\"\n\n"
        "[[port]]\nport = 9001\npassthrough = true\ndim = 64\nhost = \"::1\"\n"
        "fault = [\"v3:error=0.3,latency_ms=200\", \"v4:latency_ms=5\"]\n"
    )
    assert specs == [
        PortSpec(9002, "lvm-gru"),
        PortSpec(9001, None, True, 64, "::1", ("v3:error=0.3,latency_ms=200", "v4:latency_ms=5")),
    ]
    assert specs[0].host == "127.0.0.1" and specs[0].describe() == "lvm-gru"
    assert specs[1].fault_map() == {"v3": Fault(0.3, 200.0), "v4": Fault(0.0, 5.0)}


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ('port = 9001\nmodel = "a"\n[[port]]\nport = 9001\npassthrough = true\n', ["entry 2", "port 9001", "entry 1"]),
        ("port = 0\npassthrough = true\n", ["entry 1", "port:"]),
        ("port = 65536\npassthrough = true\n", ["port:", "65536"]),
        ('port = "9001"\npassthrough = true\n', ["port:"]),
        ("port = true\npassthrough = true\n", ["port:"]),
        ("passthrough = true\n", ["port:", "missing"]),
        ('port = 9001\nmodel = "../etc"\n', ["model:", "../etc"]),
        ('port = 9001\nmodel = ".hidden"\n', ["model:"]),
        ("port = 9001\nmodel = 5\n", ["model"]),
        ('port = 9001\nmodel = "a"\npassthrough = true\n', ["model", "passthrough"]),
        ("port = 9001\n", ["model", "passthrough"]),
        ("port = 9001\npassthrough = false\n", ["model", "passthrough"]),
        ('port = 9001\npassthrough = "yes"\n', ["passthrough"]),
        ('port = 9001\nmodel = "a"\nweights = "x"\n', ["unknown key", "weights"]),
        ('port = 9001\nmodel = "a"\ndim = 64\n', ["dim"]),
        ("port = 9001\npassthrough = true\ndim = 0\n", ["dim"]),
        ('port = 9001\nmodel = "a"\nhost = "0.0.0.0 --token x"\n', ["host:"]),
        ('port = 9001\nmodel = "a"\nhost = "-h"\n', ["host:"]),
        ('port = 9001\nmodel = "a"\nfault = ["v3:error=2"]\n', ["fault:", "v3:error=2"]),
        ('port = 9001\nmodel = "a"\nfault = ["v3"]\n', ["fault:"]),
        ('port = 9001\nmodel = "a"\nfault = [3]\n', ["fault:"]),
        ('port = 9001\nmodel = "a"\nfault = ["v3:error=0.1", "v3:latency_ms=1"]\n', ["fault:", "v3"]),
    ],
)
def test_bad_entries_are_refused_naming_entry_line_and_field(body: str, names: list[str]) -> None:
    text = "# my ports\n\n[[port]]\n" + body
    with pytest.raises(PortsFileError) as err:
        parse_ports(text)
    msg = str(err.value)
    line = 6 if names[0] == "entry 2" else 3  # the [[port]] header of the entry at fault
    assert msg.startswith("ports.toml: port entry") and f"(line {line})" in msg, msg
    for name in names:
        assert name in msg, (name, msg)


def test_the_line_named_is_the_entry_header() -> None:
    text = '[[port]]\nport = 9001\nmodel = "a"\n\n# the next one\n[[port]]\nport = 9002\nmodel = "a b"\n'
    with pytest.raises(PortsFileError, match=r"entry 2 \(line 6\), port 9002: model:"):
        parse_ports(text)


@pytest.mark.parametrize(
    "text",
    ["[[port]\nport = 1\n", "port = 9001\n", "[port]\nport = 9001\n", "version = 1\n", "[[port]]\nport = 9001 9002\n"],
)
def test_not_ports_toml_is_refused(text: str) -> None:
    with pytest.raises(PortsFileError, match="ports.toml"):
        parse_ports(text)


def test_read_ports_refuses_a_fifo_and_bad_bytes_without_blocking(ws: Workspace) -> None:
    ws.ports_file.unlink()
    os.mkfifo(ws.ports_file)
    with pytest.raises(PortsFileError, match="FIFO"):
        read_ports(ws)
    ws.ports_file.unlink()
    ws.ports_file.write_bytes(b"[[port]]\nport = 9001\nmodel = \"\xff\"\n")
    with pytest.raises(PortsFileError, match="UTF-8"):
        read_ports(ws)


def test_write_ports_round_trips_and_is_atomic(ws: Workspace) -> None:
    specs = [
        PortSpec(9001, "lvm-amn"),
        PortSpec(9005, None, True, 64),
        PortSpec(9006, "lvm-transformer", host="0.0.0.0", faults=('v3:error=0.3,latency_ms=200',)),
    ]
    write_ports(ws, specs)
    assert read_ports(ws) == specs
    assert not list(ws.root.glob(".ports.toml.*"))
    before = ws.ports_file.read_bytes()
    for bad in ([PortSpec(9001, "a"), PortSpec(9001, "b")], [PortSpec(9001, "a b")], [PortSpec(9001, None)]):
        with pytest.raises(ValueError):
            write_ports(ws, bad)
        assert ws.ports_file.read_bytes() == before  # nothing half-written
    write_ports(ws, [])
    assert read_ports(ws) == []

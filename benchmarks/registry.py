"""Registry figures (issue 11): deploy against cp + sha256sum, promote/rollback against the
interpreter's start, and `list --json` and the Versions pane on 2,000 versions.

Each figure runs its reference side by side in the same rounds, alternating which goes first,
every command in a fresh process as a user would run it (bytecode cached: the children run
without PYTHONDONTWRITEBYTECODE; one warm-up of each side first):
  a. deploy: `trainledger registry deploy M --path DIR --no-probe` of a folder holding one
     --size-mb MB .safetensors, against `cp FILE DST` then `sha256sum DST` (two processes).
     Goal: within 1.5x, as the median of per-round ratios (the pair of a round runs seconds
     apart, so passing load cancels out); the ratio of the medians is printed too. deploy
     fsyncs its copy before the commit and cp does not, so `cp` + `sync DST` + `sha256sum` is
     shown beside it (not a goal).
  b. promote, then rollback, between two versions of --live-mb MB each (1 and 16 by default;
     promote and rollback re-hash the target's bytes before it goes live, so the figure grows
     with the artifact), against `trainledger --version`: the operation itself is the
     difference of the medians. Goal: under 50 ms. The engine alone (Registry.promote in this
     process, opening and closing the registry) is printed beside it.
  c. a registry of --versions versions over --models models (built straight through db.py in
     one transaction: 100 versions a model, the newest on canary at 10 %, the one before it
     active, the one before that its rollback target): `registry list --json`, the whole
     command, goal under 200 ms; and the Versions pane in the real console (App.run_test,
     headless, 160x48, its tab shown at once) from the pane's on_mount to the first frame
     after every version's line is in its tree, goal under 300 ms (and to its first frame).

The CLI is `python -m trainledger.console.cli registry ...` when the console's CLI has the
`registry` command, else `python -m trainledger.engines.registry ...` (said in the output).
Data lives in benchmarks/.data/registry-*/ (git-ignored; the 200 MB file is made once).

Run: python benchmarks/registry.py [--rounds 7] [--size-mb 200] [--live-mb 1,16]
     [--versions 2000] [--models 20] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import DATA, median, ratio, verdict  # noqa: E402

from trainledger.engines.workspace import Workspace, init_workspace  # noqa: E402

GOAL_DEPLOY_X, GOAL_LIVE_MS, GOAL_LIST_MS, GOAL_PANE_MS = 1.5, 50.0, 200.0, 300.0


# ---------------------------------------------------------------------- commands
def cli_prefix() -> tuple[list[str], str]:
    from trainledger.console import cli

    if "registry" in getattr(cli, "COMMANDS", ()):
        return [sys.executable, "-m", "trainledger.console.cli", "registry"], "trainledger.console.cli registry"
    return [sys.executable, "-m", "trainledger.engines.registry"], "trainledger.engines.registry (no console verb)"


# A user's interpreter caches bytecode; a sandbox that sets PYTHONDONTWRITEBYTECODE would make
# every child compile trainledger from source and time that instead.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str], timeout: float = 300) -> float:
    """Seconds from spawning `cmd` to its exit; its output is discarded, a failure raises."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout, env=CHILD_ENV)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    return took


def ms(xs: list[float]) -> str:
    return f"{median(xs) * 1000:7.1f} ms ({min(xs) * 1000:.1f}–{max(xs) * 1000:.1f}, n={len(xs)})"


def rounds_of(n: int, named: dict[str, list[str] | list[list[str]]]) -> dict[str, list[float]]:
    """Run each named command (or command sequence) once per round, rotating the order."""
    out: dict[str, list[float]] = {k: [] for k in named}
    keys = list(named)
    for r in range(n):
        for k in keys[r % len(keys):] + keys[: r % len(keys)]:
            cmds = named[k]
            seq = cmds if isinstance(cmds[0], list) else [cmds]
            out[k].append(sum(timed(c) for c in seq))  # type: ignore[arg-type]
    return out


# ---------------------------------------------------------------------- data
def big_file(path: Path, size_mb: int) -> Path:
    """A real safetensors file of about `size_mb` MB (random float32), made once."""
    if path.exists() and abs(path.stat().st_size - size_mb * 2**20) < 2**20:
        return path
    import numpy as np
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    n = size_mb * 2**20 // 4
    rng = np.random.default_rng(0)
    tmp = path.with_suffix(".tmp")
    save_file({"weight": rng.standard_normal(n, dtype=np.float32)}, str(tmp))
    tmp.rename(path)
    return path


def fresh_ws(name: str) -> Workspace:
    root = DATA / name
    shutil.rmtree(root / "registry", ignore_errors=True)
    return init_workspace(root)


def live_ws(mb: int) -> Workspace:
    """Model bench-live with v1 (active) and v2, each one `mb` MB file: deployed in-process."""
    from trainledger.engines.registry.store import Registry
    from trainledger.engines.registry.types import Candidate, SourceFile

    ws = fresh_ws(f"registry-live-{mb}")
    with Registry(ws) as reg:
        for k in (1, 2):
            f = ws.root / "incoming" / f"v{k}" / "model.safetensors"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(os.urandom(mb * 2**20))
            reg.deploy("bench-live", Candidate(kind=None, files=(SourceFile(f.name, f),), source=str(f.parent)))
        reg.promote("bench-live", "v1")
    return ws


def many_ws(models: int, versions: int) -> Workspace:
    """`versions` versions over `models` models, written through db.py in one transaction."""
    from trainledger.engines.registry import blobs
    from trainledger.engines.registry.db import Database
    from trainledger.engines.registry.store import DB_FILE
    from trainledger.engines.registry.types import Artifact, AuditEntry, Check, Version

    ws = fresh_ws(f"registry-many-{models}x{versions}")
    ws.registry_dir.mkdir(parents=True, exist_ok=True)
    f = ws.root / "incoming" / "model.safetensors"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(os.urandom(1 << 16))
    sha, size = blobs.store(ws.registry_dir, f)
    db = Database(ws.registry_dir / DB_FILE, create=True)
    per = versions // models
    t0 = 1.795e9
    checks = (Check("files exist", True, "1 file"), Check("size", True, "64 KB within 1 KB-2 GB"),
              Check("format", True, ".safetensors header ok"))  # fmt: skip

    def audit(model: str, action: str, to: str, t: float, active: str | None, canary: str | None,
              traffic: int) -> None:  # fmt: skip
        db.insert_audit(AuditEntry(0, t, "bench", "bench-host", model, action, None, to, "benchmark", {},
                                   active, canary, traffic))  # fmt: skip

    with db.write():
        for m in range(models):
            name = f"model-{m:02d}"
            db.insert_model(name, "ternary-vae", t0)
            for k in range(1, per + 1):
                t = t0 + m * 10_000 + k * 60
                status = {per: "canary", per - 1: "active"}.get(k, "inactive")
                db.insert_version(Version(
                    model=name, version=f"v{k}", seq=k, status=status, created_at=t, deployed_at=t, kind="ternary-vae",
                    artifacts=(Artifact("model.safetensors", sha, size),), checksum=sha,
                    source=f"run run-{m:02d}-{k:03d}, checkpoint best", run_id=f"run-{m:02d}-{k:03d}",
                    checkpoint="best", epoch=k % 40 + 1, step=(k % 40 + 1) * 139, is_best=True, is_last=False,
                    training_samples=17715, metrics={"val/loss": 0.3 + 1 / k, "train/loss": 0.2},
                    dataset_path="data/demo.npz", dataset_sha256=sha,
                    reproduce=f"trainledger train ternary-vae --seed {k} --epochs 400", checks=checks, verified_at=t,
                ))  # fmt: skip
                audit(name, "deploy", f"v{k}", t, f"v{k - 1}" if k > 1 else None, None, 0)
            db.update_model(name, t0, active=f"v{per - 1}", previous=f"v{per - 2}", canary=f"v{per}", traffic=10)
            audit(name, "promote", f"v{per - 1}", t + 1, f"v{per - 1}", None, 0)
            audit(name, "canary", f"v{per}", t + 2, f"v{per - 1}", f"v{per}", 10)
    db.close()
    return ws


# ---------------------------------------------------------------------- figures
def bench_deploy(prefix: list[str], rounds: int, size_mb: int) -> dict[str, object]:
    ws = fresh_ws("registry-deploy")
    folder = ws.root / "incoming"
    src = big_file(folder / "model.safetensors", size_mb)
    dst = DATA / "registry-cp" / "copy.safetensors"
    dst.parent.mkdir(parents=True, exist_ok=True)
    deploy = [*prefix, "deploy", "bench-deploy", "--path", str(folder), "--no-probe", "--workspace", str(ws.root)]
    named = {
        "deploy": deploy,
        "cp + sha256sum": [["cp", str(src), str(dst)], ["sha256sum", str(dst)]],
        "cp + sync + sha256sum": [["cp", str(src), str(dst)], ["sync", str(dst)], ["sha256sum", str(dst)]],
    }
    for cmds in named.values():  # warm: the source in the page cache, bytecode cached, for every side alike
        for c in cmds if isinstance(cmds[0], list) else [cmds]:
            timed(c)  # type: ignore[arg-type]
    got = rounds_of(rounds, named)
    dst.unlink(missing_ok=True)
    per_round = [d / c for d, c in zip(got["deploy"], got["cp + sha256sum"])]  # passing load cancels out
    x = median(per_round)
    print(f"\na. deploy of a {size_mb} MB .safetensors (--path, --no-probe), {rounds} rounds")
    for k, v in got.items():
        print(f"   {k:<24} {ms(v)}  {ratio(median(got['deploy']), median(v))} deploy/this (medians)")
    print(f"   per-round deploy / (cp + sha256sum): {', '.join(f'{r:.2f}' for r in per_round)}")
    print(f"   goal deploy within {GOAL_DEPLOY_X}x of cp + sha256sum (median per-round ratio): {x:.2f}x  "
          f"{verdict(x <= GOAL_DEPLOY_X)}")
    return {"deploy_x": x, "ok": x <= GOAL_DEPLOY_X}


def bench_live(prefix: list[str], rounds: int, mb: int) -> dict[str, object]:
    ws = live_ws(mb)
    w = ["--workspace", str(ws.root)]
    named = {
        "promote v2": [*prefix, "promote", "bench-live", "v2", *w],
        "rollback (to v1)": [*prefix, "rollback", "bench-live", *w],
        "trainledger --version": [sys.executable, "-m", "trainledger.console.cli", "--version"],
    }
    got: dict[str, list[float]] = {k: [] for k in named}
    for k in named:  # warm: bytecode cached, files in the page cache
        timed(named[k])  # type: ignore[arg-type]
    for r in range(rounds):  # promote must precede its rollback; the reference moves around them
        order = ["promote v2", "rollback (to v1)"]
        order.insert(r % 3, "trainledger --version")
        for k in order:
            got[k].append(timed(named[k]))  # type: ignore[arg-type]
    base = median(got["trainledger --version"])
    print(f"\nb. promote / rollback from the CLI, {mb} MB artifacts (re-hashed before going live), {rounds} rounds")
    out: dict[str, object] = {}
    ok = True
    for k, v in got.items():
        extra = "" if k.startswith("trainledger") else f"  operation {(median(v) - base) * 1000:6.1f} ms"
        print(f"   {k:<24} {ms(v)}{extra}")
        if extra:
            op = (median(v) - base) * 1000
            out[k] = op
            ok = ok and op < GOAL_LIVE_MS
    inproc = {"promote": [], "rollback": []}  # the engine alone: open the registry, the transaction, close
    from trainledger.engines.registry.store import Registry

    for _ in range(rounds):
        for op, call in (("promote", lambda reg: reg.promote("bench-live", "v2")),
                         ("rollback", lambda reg: reg.rollback("bench-live"))):  # fmt: skip
            t0 = time.perf_counter()
            with Registry(ws) as reg:
                call(reg)
            inproc[op].append(time.perf_counter() - t0)
    for op, v in inproc.items():
        print(f"   in-process Registry.{op:<9} {ms(v)}  (the rest of the operation is imports and argparse)")
    print(f"   goal operation under {GOAL_LIVE_MS:g} ms: {verdict(ok)}")
    out["ok"] = ok
    return out


def bench_list(prefix: list[str], rounds: int, models: int, versions: int) -> dict[str, object]:
    ws = many_ws(models, versions)
    cmd = [*prefix, "list", "--json", "--workspace", str(ws.root)]
    out = subprocess.run(cmd, capture_output=True, timeout=60, check=True).stdout
    doc = json.loads(out)
    named = {"list --json": cmd, "trainledger --version": [sys.executable, "-m", "trainledger.console.cli",
                                                           "--version"]}  # fmt: skip
    timed(cmd)
    got = rounds_of(rounds, named)
    m = median(got["list --json"]) * 1000
    print(f"\nc. {versions} versions over {models} models, {rounds} rounds ({len(out) / 1e6:.1f} MB of JSON, "
          f"keys {sorted(doc)[:4]})")
    for k, v in got.items():
        print(f"   {k:<24} {ms(v)}")
    print(f"   goal list --json under {GOAL_LIST_MS:g} ms (whole command): {m:.1f} ms  {verdict(m < GOAL_LIST_MS)}")
    return {"list_ms": m, "ok": m < GOAL_LIST_MS, "ws": ws}


def pane_child(workspace: str, models: int) -> None:
    """In a fresh interpreter: the console headless at 160x48 (App.run_test), the Versions tab shown at
    once; prints JSON with the seconds from the pane's on_mount to its first frame with lines
    (`first`: the models and what is live, from the quick first read) and to the frame after
    every version's line is in the tree (`drawn`: the full snapshot, the goal's figure)."""
    import asyncio

    from trainledger.console.app import TrainledgerApp
    from trainledger.console.panes.versions import VersionsPane
    from trainledger.engines.workspace import open_workspace

    marks: dict[str, float] = {}
    original_mount = VersionsPane.on_mount

    def on_mount(self: VersionsPane) -> None:
        marks.setdefault("mounted", time.perf_counter())
        original_mount(self)

    VersionsPane.on_mount = on_mount  # type: ignore[method-assign]

    class Timed(TrainledgerApp):
        def _display(self, screen, renderable) -> None:  # type: ignore[no-untyped-def]
            # Textual calls this after each refresh; None means nothing visible changed since the
            # last frame (so the screen already shows what the pane holds).
            super()._display(screen, renderable)
            pane = next((p for _, p in self.panes() if isinstance(p, VersionsPane)), None)
            if pane is None or "mounted" not in marks:
                return
            if renderable is not None and pane._lines and "first" not in marks:
                marks["first"] = time.perf_counter()
            whole = pane.loads and len(pane._lines) == len(pane.models) + len(pane.versions)
            if whole and "first" in marks and "drawn" not in marks:
                marks["drawn"] = time.perf_counter()

    async def go() -> None:
        app = Timed(open_workspace(workspace), watch=False)
        async with app.run_test(size=(160, 48)) as pilot:
            app.action_show_pane("versions")
            deadline = time.monotonic() + 15
            while "drawn" not in marks and time.monotonic() < deadline:
                await pilot.pause(0.005)
                pane = next((p for _, p in app.panes() if isinstance(p, VersionsPane)), None)
                if pane is not None and pane.loads and len(pane._lines) == len(pane.models) + len(pane.versions):
                    await pilot.pause()  # the tree is whole; if no frame said so yet, let its refresh run
                    marks.setdefault("drawn", time.perf_counter())
            pane = next((p for _, p in app.panes() if isinstance(p, VersionsPane)), None)
            marks["_loads"] = float(pane.loads if pane else -1)
            if "drawn" not in marks:  # said, so a run that never drew can be told from a slow one
                held = f"lines={len(pane._lines)} of {len(pane.models) + len(pane.versions)}" if pane else "no pane"
                print(f"not drawn within 15 s: mounted={'mounted' in marks} {held} screen={app.screen!r}",
                      file=sys.stderr)
            if pane is not None and pane.read_error:
                print(pane.read_error, file=sys.stderr)

    asyncio.run(go())
    print(json.dumps({k: marks[k] - marks["mounted"] for k in ("drawn", "first") if k in marks}
                     | {"loads": marks.get("_loads")}))


def bench_pane(ws: Workspace, rounds: int, models: int) -> dict[str, object] | None:
    try:
        import trainledger.console.panes.versions  # noqa: F401
    except ImportError:
        print("   Versions pane: console/panes/versions.py does not exist yet; figure left out")
        return None
    cmd = [sys.executable, __file__, "--pane-child", str(ws.root), "--models", str(models)]
    got, first, missed = [], [], []
    for r in range(rounds + 1):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=CHILD_ENV)
        if proc.returncode != 0:
            print(f"   Versions pane: the child failed:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")
            return None
        doc = json.loads(proc.stdout.strip().splitlines()[-1])
        if r and "drawn" not in doc:
            missed.append(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no report")
        if r and "drawn" in doc:  # round 0 warms the bytecode cache
            got.append(doc["drawn"])
            if "first" in doc:
                first.append(doc["first"])
    if not got:
        print("   Versions pane: never drawn with every version within 15 s")
        return {"ok": False}
    m = median(got) * 1000
    for why in missed:
        print(f"   Versions pane: a run left out: {why}")
    if first:
        print(f"   Versions pane (160x48), on_mount to its first frame (models, what is live): {ms(first)}")
    print(f"   Versions pane (160x48), on_mount to every version's line drawn:       {ms(got)}")
    print(f"   goal pane drawn under {GOAL_PANE_MS:g} ms after it mounts: {m:.1f} ms  {verdict(m < GOAL_PANE_MS)}")
    return {"pane_ms": m, "ok": m < GOAL_PANE_MS and not missed}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--size-mb", type=int, default=200)
    p.add_argument("--live-mb", default="1,16", help="artifact sizes for promote/rollback, comma-separated")
    p.add_argument("--versions", type=int, default=2000)
    p.add_argument("--models", type=int, default=20)
    p.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    p.add_argument("--pane-child", metavar="WS", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.pane_child:
        pane_child(args.pane_child, args.models)
        return 0
    prefix, said = cli_prefix()
    load = os.getloadavg()[0]
    print(f"registry benchmark: CLI {said}; load average {load:.2f}; python {sys.version.split()[0]}")
    results = [bench_deploy(prefix, args.rounds, args.size_mb)]
    results += [bench_live(prefix, args.rounds, int(mb)) for mb in args.live_mb.split(",")]
    listed = bench_list(prefix, args.rounds, args.models, args.versions)
    results.append(listed)
    pane = bench_pane(listed["ws"], args.rounds, args.models)  # type: ignore[arg-type]
    if pane:
        results.append(pane)
    ok = all(r["ok"] for r in results)
    print(f"\nall goals {'met' if ok else 'not met'}")
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The package's folders are layers in the order data flows, and imports only go down them.

A module may import modules of its own layer and of the layers listed before it, never of a later
one: the event contract and the state never depend on the runtime, the publishers or the tools.
Imports under `if TYPE_CHECKING:` count too; imports inside functions count as well, since they
still tie the layers together.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "stream"

#: Lowest first. `app` is stream/app.py, the worker that wires the runtime to the publishers.
LAYERS = (
    "voice",  # sentiment of a free text: language, lexicons, valence rules (pure, no I/O)
    "config",  # settings and the KPI file, read once at start
    "contract",  # the events producers send: schemas, decoding, validation
    "state",  # buckets, windows, sketches, segments, the state of a partition
    "kpis",  # pure KPI rules: facts -> samples, and the catalogue of published KPIs
    "runtime",  # the Faust side: processor, transport, heap, health, connection, topics
    "publish",  # /metrics, the merged snapshot, Redis, /kpis
    "wiring",  # what the settings make: each topic's rules, state settings, document shape
    "app",  # the worker: wires the runtime and the publishers
    "monitoring",  # Prometheus rules and the Grafana dashboard, generated from the KPI file
    "tools",  # the command line, the demo, dev servers, generator, producer, soak
    "__main__",
)


def layer_of(module: str) -> str:
    """The layer of a module named stream.X[.Y...]."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, module) of every `stream.*` import in a file, relative imports resolved."""
    package = module_name(path, root)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("stream")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "stream":  # from stream import x: x is the module
                found += [(node.lineno, f"stream.{a.name}") for a in node.names]
            elif base.startswith("stream."):
                found.append((node.lineno, base))
    return found


def upward_imports(root: Path) -> list[str]:
    """Every import, in the package at root, of a layer later than the importer's own."""
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    wrong = []
    for path in sorted(root.rglob("*.py")):
        own = layer_of(module_name(path, root))
        if own == "__init__":
            continue
        for line, target in imported(path, root):
            if rank.get(layer_of(target), -1) > rank[own]:
                wrong.append(f"{path.relative_to(root.parent)}:{line} ({own}) imports {target}")
    return wrong


def test_every_module_is_in_a_layer() -> None:
    loose = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if layer_of(module_name(p, PACKAGE)) not in (*LAYERS, "__init__")
    ]
    assert loose == [], f"modules outside the layers of {__name__}.LAYERS: {loose}"


def test_imports_only_go_down_the_layers() -> None:
    wrong = upward_imports(PACKAGE)
    assert wrong == [], "imports up the layers:\n" + "\n".join(wrong)


def test_an_upward_import_is_reported(tmp_path: Path) -> None:
    """The check can fail: state importing the runtime, absolutely or relatively, is reported."""
    root = tmp_path / "stream"
    (root / "state").mkdir(parents=True)
    (root / "state" / "windows.py").write_text(
        "from stream.runtime import heap\nfrom ..tools import cli\nfrom . import sketch\n"
    )
    assert upward_imports(root) == [
        "stream/state/windows.py:1 (state) imports stream.runtime",
        "stream/state/windows.py:2 (state) imports stream.tools",
    ]


def test_the_rules_and_the_state_import_neither_faust_nor_kafka() -> None:
    """The KPI arithmetic and the scoring of texts are unit-testable without a broker: no Faust,
    aiokafka or Redis."""
    heavy = ("faust", "aiokafka", "mode", "redis")
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if layer_of(module_name(path, PACKAGE)) not in ("voice", "contract", "state", "kpis"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            wrong += [f"{path.name}: {n}" for n in names if n.split(".")[0] in heavy]
    assert wrong == []


#: One module per concern: a module past this many lines holds more than one, and is split.
MAX_MODULE_LINES = 450


def test_no_module_is_longer_than_one_concern_needs() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in sorted(PACKAGE.rglob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines (split them): {long}"

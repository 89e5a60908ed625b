"""Guards on the project itself: generated code matches the protos, layers point one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = SRC / "assignsvc"

# Lower number = lower layer: each folder of the package is one layer, and a module may
# import only its own layer or lower ones. The leaves are imported by anyone and import
# only each other; v1 (generated) only from the edges that speak gRPC.
LAYERS: dict[str, int] = {
    "core": 0,
    "store": 1,
    "documents": 1,
    "app": 2,
    "api": 3,
    "server": 4,
    "cli": 5,
    "__main__": 5,
}
LEAVES = {"errors", "config", "config_reference", "logs", "metrics", "__init__"}
V1_IMPORTERS = {"api", "server", "cli"}
IMPURE = {"grpc", "redis", "os", "time", "random", "logging", "asyncio", "socket"}
# core's one impure module: the wall clock every use case is handed (the rest of core
# takes the time as an argument).
CORE_CLOCK = "clock.py"


class TestGeneratedCode:
    """src/assignsvc/v1 is exactly what `make proto` generates from protos/."""

    def test_no_drift(self, tmp_path: Path) -> None:
        # Only protos/ (googleapis' imports are vendored there) and protobuf's own well-known types.
        protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "protos" / "assignsvc").rglob("*.proto"))
        args = [
            "protoc",
            "-Iprotos",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            "-I" + str(Path(protoc.__file__).parent / "_proto"),
            *protos,
        ]
        import os  # noqa: PLC0415

        cwd = os.getcwd()
        os.chdir(ROOT)
        try:
            assert protoc.main(args) == 0
        finally:
            os.chdir(cwd)
        generated = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*.py*")}
        committed = {p.relative_to(SRC): p.read_bytes() for p in (PACKAGE / "v1").glob("*_pb2*.py*")}
        assert generated.keys() == committed.keys(), "run `make proto` and commit the result"
        for path, content in generated.items():
            assert committed[path] == content, f"{path} drifted from the .proto files: run `make proto`"


def _top(package: Path, module_path: Path) -> str:
    """The layer a module belongs to: its first folder (or its file name) in the package."""
    return module_path.relative_to(package).parts[0].removesuffix(".py")


def _absolute(package: Path, path: Path, node: ast.ImportFrom) -> str:
    """The dotted module an ImportFrom names, relative imports resolved against `path`."""
    if not node.level:
        return node.module or ""
    parts = [package.name, *path.relative_to(package).with_suffix("").parts]
    base = parts[: len(parts) - node.level]
    return ".".join([*base, *([node.module] if node.module else [])])


def imported_modules(package: Path, path: Path) -> set[str]:
    """Every assignsvc module `path` imports, in any form: `import a.b`, `from a import b`
    (b may be a module), relative imports, and `importlib.import_module("a.b")`."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(package, path, node)
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return {name for name in names if name.startswith(package.name + ".")}


def _layer_of(package: Path, dotted: str) -> str | None:
    """The layer (top folder or leaf module) a dotted name lies in; None for a name that
    is not a module of the package (`from assignsvc.core import model` also yields
    `assignsvc.core.model`, and `from assignsvc.errors import X` yields `assignsvc.errors.X`)."""
    top = dotted.split(".")[1]
    return top if (package / top).is_dir() or (package / f"{top}.py").is_file() else None


def layer_violations(package: Path) -> list[str]:
    """Every import in the package that points to a higher layer, to generated code from
    outside the edges, or out of core into I/O; and every module outside any layer."""
    found: list[str] = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if rel.parts[0] == "v1":
            continue
        top = _top(package, path)
        if top not in LAYERS and top not in LEAVES:
            found.append(f"{rel}: {top} has no layer (add it to LAYERS and ARCHITECTURE.md)")
            continue
        for dotted in sorted(imported_modules(package, path)):
            layer = _layer_of(package, dotted)
            if layer is None or layer == top:
                continue
            if layer == "v1":
                if top not in V1_IMPORTERS:
                    found.append(f"{rel}: imports generated code ({dotted})")
            elif top in LEAVES:
                if layer not in LEAVES:
                    found.append(f"{rel}: a leaf imports {dotted}")
            elif layer not in LEAVES and LAYERS[layer] > LAYERS[top]:
                found.append(f"{rel} ({top}) imports the higher layer {layer} ({dotted})")
        if top == "core" and rel.name != CORE_CLOCK:
            found += [f"{rel}: core imports {name}" for name in sorted(_top_level_imports(path) & IMPURE)]
    return found


def _top_level_imports(path: Path) -> set[str]:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module.split(".")[0])
    return imported


class TestLayers:
    """No module imports a higher layer, in any import form; core imports no I/O at all."""

    def test_the_package_keeps_its_layers(self) -> None:
        assert layer_violations(PACKAGE) == []

    @pytest.mark.parametrize(
        ("module", "source", "expected"),
        [
            ("core/bad.py", "from assignsvc.store import keys\n", "imports the higher layer store"),
            ("core/bad.py", "import assignsvc.app.assign\n", "imports the higher layer app"),
            ("core/bad.py", "from assignsvc import api\n", "imports the higher layer api"),
            ("store/bad.py", "from ..app import assign\n", "imports the higher layer app"),
            ("store/bad.py", "from ..server.wiring import create_server\n", "imports the higher layer server"),
            ("app/bad.py", "import importlib\nimportlib.import_module('assignsvc.cli.main')\n", "higher layer cli"),
            ("app/bad.py", "from assignsvc.v1 import experiment_pb2\n", "imports generated code"),
            ("errors.py", "from assignsvc.core import model\n", "a leaf imports"),
            ("core/bad.py", "import time\n", "core imports time"),
            ("gadgets/thing.py", "x = 1\n", "gadgets has no layer"),
        ],
    )
    def test_a_bad_import_is_caught(self, tmp_path: Path, module: str, source: str, expected: str) -> None:
        package = tmp_path / "assignsvc"
        for name in (*LAYERS, "v1"):
            if name != "__main__":
                (package / name).mkdir(parents=True, exist_ok=True)
                (package / name / "__init__.py").write_text("")
        for leaf in LEAVES:
            (package / f"{leaf}.py").write_text("")
        (package / "store" / "keys.py").write_text("")
        (package / module).parent.mkdir(parents=True, exist_ok=True)
        (package / module).write_text(source)
        found = layer_violations(package)
        assert any(expected in line for line in found), found

    def test_a_good_import_passes(self, tmp_path: Path) -> None:
        package = tmp_path / "assignsvc"
        for name in ("core", "store", "app"):
            (package / name).mkdir(parents=True)
            (package / name / "__init__.py").write_text("")
        (package / "errors.py").write_text("")
        (package / "app" / "good.py").write_text(
            "from assignsvc.core import model\nfrom ..store import keys\nfrom . import other\nimport assignsvc.errors\n"
        )
        assert layer_violations(package) == []

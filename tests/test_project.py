"""Guards on the project itself: generated code matches the protos, layers point one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PACKAGE = SRC / "assignsvc"

# Lower number = lower layer. A module may import only its own layer or lower ones
# (errors and config are leaves anyone may import); v1 only from the gRPC edge.
LAYERS: dict[str, int] = {
    "core": 0,
    "store": 1, "registry": 1, "redis_server": 1, "documents": 1, "sticky_cache": 1, "pacing": 1,
    "metrics": 1, "logs": 1,
    "assigner": 2, "catalog": 2, "applier": 2, "exporter": 2, "preassigner": 2, "webhooks": 2, "saved_groups": 2,
    "access": 2,
    "service": 3,
    "server": 4, "workers": 4,
    "cli": 5, "cli_output": 5, "cli_bulk": 5, "cli_webhooks": 5, "cli_groups": 5, "cli_access": 5, "__main__": 5,
}
LEAVES = {"errors", "config", "__init__"}
V1_IMPORTERS = {"service", "server", "cli", "cli_bulk", "cli_webhooks", "cli_groups", "cli_access"}


class TestGeneratedCode:
    """src/assignsvc/v1 is exactly what `make proto` generates from protos/."""

    def test_no_drift(self, tmp_path: Path) -> None:
        protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "protos").rglob("*.proto"))
        from google.rpc import status_pb2  # noqa: PLC0415 - googleapis-common-protos ships status.proto beside it

        args = ["protoc", "-Iprotos", f"-I{Path(status_pb2.__file__).parents[2]}", f"--python_out={tmp_path}",
                f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}",
                "-I" + str(Path(protoc.__file__).parent / "_proto"), *protos]
        import os  # noqa: PLC0415

        cwd = os.getcwd()
        os.chdir(ROOT)
        try:
            assert protoc.main(args) == 0
        finally:
            os.chdir(cwd)
        generated = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*.py*")}
        committed = {
            p.relative_to(SRC): p.read_bytes()
            for p in (PACKAGE / "v1").glob("*_pb2*.py*")
        }
        assert generated.keys() == committed.keys(), "run `make proto` and commit the result"
        for path, content in generated.items():
            assert committed[path] == content, f"{path} drifted from the .proto files: run `make proto`"


def _top(module_path: Path) -> str:
    rel = module_path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return {n.split(".")[1] for n in names if n.startswith("assignsvc.") and n.count(".") >= 1}


MODULES = [p for p in PACKAGE.rglob("*.py") if "v1" not in p.relative_to(PACKAGE).parts]


class TestLayers:
    """No module imports a higher layer; core imports no I/O at all."""

    @pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
    def test_imports_point_down(self, path: Path) -> None:
        top = _top(path)
        if top in LEAVES:
            assert _imports(path) <= LEAVES, f"{top} must stay a leaf"
            return
        assert top in LAYERS, f"{top} has no layer: add it to LAYERS and ARCHITECTURE.md"
        for imported in _imports(path) - LEAVES:
            if imported == "v1":
                assert top in V1_IMPORTERS, f"{path.name} imports generated code"
                continue
            assert LAYERS[imported] <= LAYERS[top], f"{path.name} ({top}) imports {imported}"

    @pytest.mark.parametrize("path", sorted((PACKAGE / "core").glob("*.py")), ids=lambda p: p.name)
    def test_core_is_pure(self, path: Path) -> None:
        tree = ast.parse(path.read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
        assert not imported & {"grpc", "redis", "os", "time", "random", "logging", "asyncio", "socket"}

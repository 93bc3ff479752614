"""The import graph of the `mqt_llava` package, read from the source with `ast`: every project import goes through
the one namespace, imports between subpackages follow the documented layers (docs/architecture.md), and none forms a
cycle or reaches up to the command-line layer."""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

from conftest import REPO_ROOT

PACKAGE = "mqt_llava"
ROOT = ""  # the top package itself: the `mqt-llava` command, `mqt_llava.auto`, the lazy public names

# What each subpackage may import from the others. The top package may import everything; nothing imports it.
ALLOWED = {
    "modeling_mqt_llava": set(),
    "processing": set(),
    "model_cards": set(),
    "tools": {"modeling_mqt_llava", "processing"},
    "training": {"modeling_mqt_llava", "processing"},
    "serving": {"modeling_mqt_llava", "processing"},
    "evaluation": {"modeling_mqt_llava", "processing", "tools", "serving"},
    "convert": {"modeling_mqt_llava", "processing", "model_cards"},
    "demo": {"modeling_mqt_llava", "processing", "model_cards", "tools", "training", "evaluation", "serving"},
    "app": {"modeling_mqt_llava", "processing", "tools", "evaluation", "demo"},
}
# Optional extras: the only modules that may import them (anywhere, inside functions too).
EXTRA_IMPORTERS = {"gradio": {"mqt_llava.app.ui"}}


def package_folders() -> dict[str, Path]:
    """Subpackage name (ROOT for the top package) -> repository folder, as setup.cfg maps them."""
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    folders = {}
    for line in config["options"]["package_dir"].strip().splitlines():
        name, folder = (part.strip() for part in line.split("="))
        folders[name.removeprefix(PACKAGE).removeprefix(".")] = REPO_ROOT / folder
    return folders


def modules() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package (the shipped model folder excluded)."""
    found = {}
    for subpackage, folder in package_folders().items():
        for path in folder.rglob("*.py"):
            if "assets" in path.relative_to(folder).parts:
                continue
            parts = [PACKAGE] + ([subpackage] if subpackage else []) + list(path.relative_to(folder).with_suffix("").parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_names(module: str, path: Path) -> set[str]:
    """Absolute names of everything `module` imports (relative imports resolved), inside functions too."""
    is_package = path.name == "__init__.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module
            names.update(f"{origin}.{alias.name}" for alias in node.names)
    return names


def subpackage_of(name: str) -> str | None:
    """The subpackage a `mqt_llava...` name belongs to (ROOT for the top package's own modules), else None."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else ROOT


def dependency_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in [*ALLOWED, ROOT]}
    for module, path in modules().items():
        source = subpackage_of(module)
        for name in imported_names(module, path):
            target = subpackage_of(name)
            if target is not None and target != source:
                graph[source].add(target)
    return graph


def test_every_folder_of_the_package_is_a_mapped_subpackage():
    """Protects the one namespace: setup.cfg maps exactly the layers this test knows onto repository folders."""
    assert set(package_folders()) == {*ALLOWED, ROOT}
    assert all(folder.is_dir() and (folder / "__init__.py").is_file() for folder in package_folders().values())


def test_project_imports_go_through_the_namespace():
    """Protects against generic top-level imports (`import training`, `from evaluation ...`): the code imports its own
    parts only as `mqt_llava.<subpackage>` or relatively, so a user's own `training/` folder can never shadow them."""
    generic = {path.name for path in package_folders().values()} - {PACKAGE}
    offenders = []
    for module, path in modules().items():
        for name in imported_names(module, path):
            if name.split(".")[0] in generic:
                offenders.append(f"{module} imports {name}")
    assert not offenders, offenders


def test_subpackages_import_only_their_lower_layers():
    """Protects the one-way graph: the payload and processing import nothing of ours, training and evaluation never
    import the demo (nor evaluation training), and no subpackage imports the command-line layer above it."""
    graph = dependency_graph()
    for source, allowed in ALLOWED.items():
        assert graph[source] <= allowed, f"{source} imports {sorted(graph[source] - allowed)}"


def test_import_graph_has_no_cycle():
    """Protects the one-way graph as a whole: walking the subpackage imports never comes back to its start."""
    graph = dependency_graph()
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            assert state.get(target) != "open", f"import cycle: {' -> '.join(path + [target])}"
            if target not in state:
                visit(target, path + [target])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [node or PACKAGE])


# The only modules that import vLLM: vLLM itself loads them (the plugin entry point and the model it registers).
VLLM_MODULES = {f"{PACKAGE}.serving.plugin", f"{PACKAGE}.serving.model", f"{PACKAGE}.serving.processing"}


def test_vllm_is_imported_only_by_the_plugin_modules():
    """Protects every environment without vLLM (the main one included): only the plugin, the vLLM model and its
    multimodal processor import `vllm`, and no module outside them imports any of the three, so `mqt-llava bench`,
    the server launcher and the client load without vLLM installed."""
    importers, reachers = [], []
    for module, path in modules().items():
        names = imported_names(module, path)
        if any(name.split(".")[0] == "vllm" for name in names) and module not in VLLM_MODULES:
            importers.append(module)
        if module not in VLLM_MODULES and any(name.rsplit(".", 1)[0] in VLLM_MODULES or name in VLLM_MODULES for name in names):
            reachers.append(module)
    assert not importers, f"modules importing vllm outside {sorted(VLLM_MODULES)}: {importers}"
    assert not reachers, f"modules importing the vLLM-only modules: {reachers}"
def test_optional_extras_stay_in_their_modules():
    """Protects the light core: gradio (the `app` extra) is imported by the app's page module only, so the model
    package, the app's logic and `mqt-llava app --help` work without it."""
    for extra, importers in EXTRA_IMPORTERS.items():
        found = {module for module, path in modules().items() if any(name.split(".")[0] == extra for name in imported_names(module, path))}
        assert found == importers, f"{extra} is imported by {sorted(found)}; only {sorted(importers)} may"

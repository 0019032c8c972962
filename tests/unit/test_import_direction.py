"""Import direction, read from the source with ``ast`` (nothing is imported, so no import side effects).

The package is organised by layer (issue 9), each layer holding a sub-package per feature where it has several
modules (``domain/ivr``, ``services/dialer``, ``adapters/telephony``...):
* the domain (``callcenter/domain/``) imports only the standard library and the domain itself;
* the use cases (``services/``), the ports and the store import no adapter, entry point or composition root;
* no use case nor adapter (``adapters/``, ``store/``) imports the composition root (``callcenter.bootstrap``,
  ``callcenter.runtime``) or the web layer (``callcenter.web``). The composition root's side — the
  command line (``commands/``, one module a command group), the parts (``parts/``), ``bench/`` and ``demo/`` — may;
* no feature folder mixes layers any more: the only top-level packages are the layers, the entry points and
  the separate simulated bank (``bank/``, its own process), plus the published ``callcenter.domain.pacing`` path.
Every import counts: top level, inside functions and under ``TYPE_CHECKING``. Exceptions are listed in ``ALLOWED``
with their reason; a new violation fails, and so does an entry that is no longer needed, so the lists only shrink.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "callcenter"

INNER_AREAS = ("services", "ports", "adapters", "store", "domain")
TOP_LEVEL = {"domain", "ports", "services", "store", "adapters",          # the layers
             "web", "commands", "parts", "bench", "demo",                 # entry points and the composition side
             "bank",                                                      # the simulated depository bank (a process)
             "dialer",                                                    # the published pacing path (a re-export)
             "locales", "_data"}
OUTER = ("callcenter.adapters", "callcenter.web", "callcenter.commands", "callcenter.parts", "callcenter.bench",
         "callcenter.demo", "callcenter.bank", "callcenter.bootstrap", "callcenter.runtime")
FORBIDDEN = ("callcenter.bootstrap", "callcenter.runtime", "callcenter.web")

# module -> forbidden module it imports today, with the reason it is still there.
ALLOWED: dict[tuple[str, str], str] = {
}
# use case -> outer module it imports today, with the reason.
LAYER_ALLOWED: dict[tuple[str, str], str] = {
    ("callcenter.services.desk", "callcenter.adapters.trading_exchange"):
        "the client card names instruments from the shipped list; the desk is not handed the trading gateway yet",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> Iterator[tuple[str, int]]:
    """Every module an import statement in ``path`` names (``from a import b`` names ``a`` and ``a.b``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, node.lineno
            for alias in node.names:
                yield f"{target}.{alias.name}", node.lineno


def is_module(name: str) -> bool:
    """A module or package of ours (not a name imported from one)."""
    base = PACKAGE.parent.joinpath(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def area_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def inner_modules() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py"))
            if area_of(module_name(p)) in INNER_AREAS and "migrations" not in p.parts]


def violations() -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for path in inner_modules():
        for target, line in imported_modules(path):
            for forbidden in FORBIDDEN:
                if within(target, forbidden):
                    found.setdefault((module_name(path), forbidden), line)
    return found


def test_the_scan_sees_the_package() -> None:
    names = {module_name(p) for p in inner_modules()}
    assert {"callcenter.domain.custody", "callcenter.services.transfers", "callcenter.domain.pacing",
            "callcenter.services.care.dispatch", "callcenter.domain.ivr.interpreter"} <= names
    assert not any(n.startswith("callcenter.commands") for n in names)  # entry points may wire the engine

def test_the_scan_finds_imports_inside_functions_and_relative_ones(tmp_path: Path) -> None:
    probe = PACKAGE / "services" / "_import_probe.py"
    probe.write_text("def f():\n    from ..bootstrap import App\n    import callcenter.web.app\n", encoding="utf-8")
    try:
        found = dict(imported_modules(probe))
        assert "callcenter.bootstrap" in found and "callcenter.web.app" in found
        assert ("callcenter.services._import_probe", "callcenter.bootstrap") in violations()
    finally:
        probe.unlink()


def test_domain_imports_only_the_standard_library_and_the_domain() -> None:
    stdlib = set(sys.stdlib_module_names)
    bad = []
    for path in sorted((PACKAGE / "domain").rglob("*.py")):
        for target, line in imported_modules(path):
            top = target.split(".")[0]
            if not (top in stdlib or within(target, "callcenter.domain")):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: imports {target}")
    assert not bad, "the domain is pure rules (stdlib only):\n" + "\n".join(bad)


def test_no_use_case_or_adapter_imports_the_composition_root_or_the_web_layer() -> None:
    found = violations()
    new = [f"{module} imports {target} (line {line})" for (module, target), line in sorted(found.items())
           if (module, target) not in ALLOWED]
    assert not new, ("use cases and adapters get what they need as parameters; they never import the "
                     "composition root or the web layer:\n" + "\n".join(new))
    gone = [f"{module} -> {target}" for module, target in sorted(ALLOWED) if (module, target) not in found]
    assert not gone, "no longer imported; remove from ALLOWED:\n" + "\n".join(gone)


def test_one_command_line_package() -> None:
    """Commands live in ``callcenter/commands/`` only (no per-feature ``cli.py``)."""
    strays = [str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("cli*.py")
              if (p.stem == "cli" or p.stem.startswith("cli_")) and p.parent != PACKAGE]
    assert not strays, strays


def test_use_cases_ports_and_store_import_no_adapter_or_entry_point() -> None:
    found: dict[tuple[str, str], int] = {}
    for path in inner_modules():
        module = module_name(path)
        if area_of(module) not in ("services", "ports", "store"):
            continue
        for target, line in imported_modules(path):
            for outer in OUTER:
                if within(target, outer) and is_module(target):
                    found.setdefault((module, target), line)
    new = [f"{m} imports {t} (line {line})" for (m, t), line in sorted(found.items()) if (m, t) not in LAYER_ALLOWED]
    assert not new, "use cases reach the outside through ports, handed to them:\n" + "\n".join(new)
    gone = [f"{m} -> {t}" for m, t in sorted(LAYER_ALLOWED) if (m, t) not in found]
    assert not gone, "no longer imported; remove from LAYER_ALLOWED:\n" + "\n".join(gone)


def test_the_top_level_holds_only_layers_and_entry_points() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert packages <= TOP_LEVEL, f"a folder that is neither a layer nor an entry point: {sorted(packages - TOP_LEVEL)}"
    assert {p.name for p in (PACKAGE / "dialer").glob("*.py")} == {"__init__.py", "pacing.py"}


def test_the_published_pacing_path_still_imports() -> None:
    from callcenter.domain.pacing import AgentView, AttemptOutcome, DialerState, make_pacer
    from callcenter.domain import pacing

    assert (make_pacer, AttemptOutcome, DialerState, AgentView) == (
        pacing.make_pacer, pacing.AttemptOutcome, pacing.DialerState, pacing.AgentView)

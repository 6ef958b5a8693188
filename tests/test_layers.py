"""The import contract: mailer's packages form layers (lowest first, as in the re-layout
brief) and a module imports only from its own package, a lower layer, or a same-layer
package this file names. Every ``import`` counts, also inside functions and under
``TYPE_CHECKING``: a lazy import is still a dependency."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from tests.support.constants import REPO

PACKAGE = REPO / "mailer"

#: Lowest first. ``mailer`` itself (``__version__``) sits under everything; ``__main__``
#: is the entry point and sits with the CLI.
LAYERS: list[set[str]] = [
    {"mailer"},
    {"domain"},
    {"config"},
    {"store"},
    # runtime opens the database (engine, sessions), so it sits just above store.
    {"runtime"},
    {"message"},
    {"smtp"},
    {"audience", "accounts"},
    {"releases"},
    # bounce processing acts on what a notice says: it pauses a release (releases.workflow);
    # inbound (replies) is the concern bounces grows into, at the same layer
    {"bounces", "inbound"},
    {"engine"},
    # running it as a service: health, heartbeats, metrics, doctor, webhooks, backups
    {"ops"},
    {"web", "cli", "demo", "__main__"},
]

#: Imports between two packages of the same layer that the design allows (importer, imported).
SAME_LAYER = {
    ("accounts", "audience"),  # staff addresses are normalized as contacts' are (audience.contacts.normalize_email)
    ("cli", "web"),  # `mailer web` serves the app
    ("cli", "demo"),  # `mailer demo` runs the demo
    ("__main__", "cli"),  # `python -m mailer`
    ("inbound", "bounces"),  # replies reuse the bounce reader's MIME anatomy and auto-reply detector
}

#: Known breaches (importer, imported), each with the reason it is tolerated; none today.
#: The contract test fails on a breach not listed here, and on an entry that no longer occurs.
#: A key names modules by prefix: ("mailer.store", "mailer.message") would cover any store
#: module importing any message module.
ALLOWED: dict[tuple[str, str], str] = {}

RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    module: str  # the importing module, e.g. mailer.bounces.process
    target: str  # the imported module, e.g. mailer.releases.control

    def __str__(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}: {self.module} imports {self.target}"


def package_of(module: str) -> str:
    """The layer package of a mailer module: ``mailer.store.db`` → ``store``, ``mailer`` → ``mailer``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def module_name(path: Path, root: Path = REPO) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = REPO) -> list[Import]:
    """Every mailer module ``path`` (under ``root``) imports, relative imports resolved."""
    module = module_name(path, root)
    is_package = path.name == "__init__.py"
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        targets: list[str] = []
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # `from mailer import store` imports the package mailer.store; `__version__` is mailer's own
            if target == "mailer":
                targets = ["mailer" if a.name.startswith("__") else f"mailer.{a.name}" for a in node.names]
            else:
                targets = [target]
        found += [Import(path, node.lineno, module, t) for t in targets if t == "mailer" or t.startswith("mailer.")]
    return found


def all_imports() -> list[Import]:
    return [imp for path in sorted(PACKAGE.rglob("*.py")) for imp in imports_of(path)]


def breaks_contract(imp: Import) -> str | None:
    """Why ``imp`` breaks the layer order, or None when it is allowed."""
    src, dst = package_of(imp.module), package_of(imp.target)
    if src == dst:
        return None
    if src not in RANK or dst not in RANK:
        return f"{src if src not in RANK else dst} is in no layer: add it to LAYERS"
    if RANK[dst] < RANK[src] or (src, dst) in SAME_LAYER:
        return None
    where = "the same layer as" if RANK[dst] == RANK[src] else "above"
    return f"{dst} is {where} {src}"


def allowed_key(imp: Import) -> tuple[str, str] | None:
    def under(name: str, prefix: str) -> bool:
        return name == prefix or name.startswith(prefix + ".")

    for module, target in ALLOWED:
        if under(imp.module, module) and under(imp.target, target):
            return (module, target)
    return None


def test_no_module_imports_a_higher_layer() -> None:
    """Every import in mailer/ goes down the layer order (or to an allowed same-layer package), except the listed known breaches."""
    breaches = [(imp, why) for imp in all_imports() if (why := breaks_contract(imp)) and allowed_key(imp) is None]
    assert not breaches, "imports against the layer order:\n" + "\n".join(f"  {imp}  ({why})" for imp, why in breaches)


def test_allow_list_has_no_stale_entries() -> None:
    """Each known breach in ALLOWED still occurs (remove the entry once the code is fixed)."""
    used = {allowed_key(imp) for imp in all_imports() if breaks_contract(imp)}
    stale = [key for key in ALLOWED if key not in used]
    assert not stale, f"ALLOWED entries that no longer occur: {stale}"


def test_the_contract_catches_an_upward_import(tmp_path: Path) -> None:
    """A domain module importing the engine is reported with its file, line and reason."""
    fake = PACKAGE / "domain" / "_contract_probe.py"
    imp = Import(fake, 3, "mailer.domain._contract_probe", "mailer.engine.dispatch")
    assert breaks_contract(imp) == "engine is above domain"
    assert (
        str(imp) == "mailer/domain/_contract_probe.py:3: mailer.domain._contract_probe imports mailer.engine.dispatch"
    )
    assert breaks_contract(Import(fake, 1, "mailer.web.api", "mailer.cli.root")) == "cli is the same layer as web"
    assert breaks_contract(Import(fake, 1, "mailer.cli.root", "mailer.web")) is None
    assert breaks_contract(Import(fake, 1, "mailer.runtime", "mailer.store.db")) is None


def test_relative_lazy_and_package_imports_resolve(tmp_path: Path) -> None:
    """``from ..store import db`` (relative), ``import mailer.engine`` inside a function and
    ``from mailer import web`` all count, with their lines; ``from mailer import __version__`` is the root package."""
    probe = tmp_path / "mailer" / "domain" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "from ..store import db\nfrom mailer import __version__, web\n\ndef f():\n    import mailer.engine.dispatch\n",
        "utf-8",
    )
    found = [(imp.line, imp.target) for imp in imports_of(probe, tmp_path)]
    assert found == [(1, "mailer.store"), (2, "mailer"), (2, "mailer.web"), (5, "mailer.engine.dispatch")]


def test_one_writer_of_release_status_and_history() -> None:
    """Release status changes only in releases.workflow; history is appended only in releases.history."""
    owners = {
        "move_release_status(": {"mailer/releases/workflow.py", "mailer/store/releases.py"},
        "add_release_event(": {"mailer/releases/history.py", "mailer/store/releases.py"},
        "ReleaseEvent(": {"mailer/store/releases.py", "mailer/store/tables.py"},
    }
    offenders = []
    for path in sorted((REPO / "mailer").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        text = path.read_text(encoding="utf-8")
        for call, allowed in owners.items():
            if call in text and rel not in allowed:
                offenders.append(f"{rel} calls {call}")
    assert offenders == []

"""tasks/ imports nothing from higher layers, and no torch (checked from the source)."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import swarmrl.tasks
from swarmrl.tasks import format_target, get_family, materialize, verify

ALLOWED_PROJECT = ("swarmrl.protocol", "swarmrl.config", "swarmrl.tasks")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_tasks_imports_only_protocol_and_config() -> None:
    for path in Path(swarmrl.tasks.__file__).parent.glob("*.py"):
        for name in _imports(path):
            assert name.split(".")[0] != "torch", f"{path.name} imports {name}"
            if name.startswith("swarmrl"):
                assert name.startswith(ALLOWED_PROJECT), f"{path.name} imports {name}"


def test_generate_and_verify_from_many_threads() -> None:
    # Nodes verify in worker threads: shared dataset caches and scorers must cope.
    names = ["chain_sum", "propositional_logic", "bf", "arith", "decimal_arithmetic"]
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(15):
                family = get_family(names[(k + i) % len(names)])
                problem = materialize(family.make_spec(seed=100 + k % 2, index=i))
                assert verify(problem, format_target(problem, "short"), "short").reward == 1.0
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[0]

"""The layer rules as an executable contract: `lint-imports` over [tool.importlinter] in
pyproject.toml, part of `make test`. Function-local and TYPE_CHECKING imports count."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"  # the test extra installs it


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    assert LINT_IMPORTS.exists(), f"{LINT_IMPORTS} missing: install the test extra (import-linter)"
    # --no-cache: nothing written beside the sources, and nothing stale read back.
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def test_the_import_contracts_are_kept() -> None:
    out = lint_imports(ROOT)
    assert out.returncode == 0, f"an import contract is broken:\n{out.stdout}\n{out.stderr}"


# Each plants one import in a copy of the package; `in_function` code sits inside a function body
# or under `if TYPE_CHECKING:`, the imports a glance at the top of a module misses.
PLANTED = {
    "function-local torch in tasks/": (
        "tasks/extract.py",
        "\n\ndef _planted():\n    import torch\n\n    return torch\n",
        "protocol/, net/ and tasks/ import no torch BROKEN",
        "swarmrl.tasks.extract -> torch",
    ),
    "type-only import of node/ in selfplay/": (
        "selfplay/queue.py",
        "\n\nfrom typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
        "    from swarmrl.node.loop import Node  # noqa: F401\n",
        "Layers: lower never imports higher BROKEN",
        "swarmrl.selfplay.queue -> swarmrl.node.loop",
    ),
    "function-local kernels import in node/": (
        "node/metrics.py",
        "\n\ndef _planted():\n    from swarmrl.kernels import token_logprobs\n\n"
        "    return token_logprobs\n",
        "kernels/ is used only by training/ BROKEN",
        "swarmrl.node.metrics -> swarmrl.kernels",
    ),
}


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_a_planted_import_breaks_its_contract(case: str, tmp_path: Path) -> None:
    module, code, verdict, edge = PLANTED[case]
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(ROOT / "swarmrl", tmp_path / "swarmrl",
                    ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "swarmrl" / module, "a") as f:
        f.write(code)
    out = lint_imports(tmp_path)  # lint-imports puts its cwd first on sys.path: the copy
    assert out.returncode == 1, out.stdout + out.stderr
    assert verdict in out.stdout and edge in out.stdout, out.stdout

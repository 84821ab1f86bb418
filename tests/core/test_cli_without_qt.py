import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_the_command_line_runs_without_loading_qt():
    """The import rules themselves are import-linter contracts (pyproject.toml); this checks the
    entry point: a subcommand reaches core without Qt ever being loaded."""
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "core").rglob("*.py")
    )
    assert "core.training.learner" in modules and "core.io" in modules  # every subpackage, every module
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "from fcn_gui.__main__ import main\n"
        "assert main(['info', '--size', '64']) == 0\n"
        "qt = [m for m in sys.modules if m.startswith(('PySide', 'PyQt', 'shiboken', 'qimage2ndarray'))]\n"
        "assert not qt, qt\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr

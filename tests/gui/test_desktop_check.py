"""The checks that run before Qt: no display, and system libraries the window cannot load."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fcn_gui.desktop_check import describe_missing, desktop_problem, install_commands, missing_libraries

ROOT = Path(__file__).parents[2]


@pytest.mark.skipif(shutil.which("cc") is None or shutil.which("ldd") is None, reason="needs cc and ldd")
def test_a_plugin_whose_libraries_are_missing_is_reported(tmp_path):
    (tmp_path / "dep.c").write_text("int fcn_gui_dep(void) { return 1; }\n")
    (tmp_path / "plugin.c").write_text("int fcn_gui_dep(void);\nint plugin(void) { return fcn_gui_dep(); }\n")
    dep = tmp_path / "libfcn-gui-test-missing.so.1"
    cc = ["cc", "-shared", "-fPIC"]
    subprocess.run(
        [*cc, "-Wl,-soname,libfcn-gui-test-missing.so.1", "-o", dep, tmp_path / "dep.c"], check=True
    )
    plugin = tmp_path / "libqfake.so"
    subprocess.run([*cc, "-o", plugin, tmp_path / "plugin.c", dep, f"-Wl,-rpath,{tmp_path}"], check=True)
    assert missing_libraries(plugin) == []  # found through the plugin's run path
    dep.unlink()  # as on a machine without the package
    assert missing_libraries(plugin) == ["libfcn-gui-test-missing.so.1"]
    assert "libfcn-gui-test-missing.so.1" in missing_libraries(plugin, ("libfcn-gui-test-missing.so.1",))


def test_missing_xcb_libraries_name_the_packages_and_the_command():
    apt, dnf = install_commands(["libxcb-icccm.so.4", "libxcb-keysyms.so.1"])
    assert apt == "sudo apt-get install -y libxcb-icccm4 libxcb-keysyms1"
    assert dnf == "sudo dnf install -y xcb-util-keysyms xcb-util-wm"
    text = describe_missing(["libxcb-cursor.so.0"])
    assert "libxcb-cursor0" in text and "xcb-util-cursor" in text and "\n" not in text


def test_no_display_is_one_line_and_exit_2_without_starting_qt():
    assert desktop_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["PYTHONPATH"] = str(ROOT)
    code = (
        "import sys, fcn_gui.__main__ as m; r = m.main([]); assert 'PySide6' not in sys.modules; sys.exit(r)"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no display" in lines[0] and "xvfb-run" in lines[0], done.stderr
    assert "Traceback" not in done.stderr

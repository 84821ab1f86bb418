"""Before Qt starts: is there a display, and can Qt's platform plugin load its system libraries?

Qt aborts the process (SIGABRT) with a misleading message when either is missing. This module
imports no Qt: it asks the dynamic loader (``ldd``) which libraries the xcb plugin cannot
find, names the packages that provide them and the exact command to install them.

    python -m fcn_gui.desktop_check [--install]

checks (and with ``--install``, as root with apt-get, installs) what the window needs; ``make
run`` calls it first.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

# soname: (Debian/Ubuntu package, Fedora package)
PACKAGES = {
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-xinerama.so.0": ("libxcb-xinerama0", "libxcb"),
    "libxcb-xinput.so.0": ("libxcb-xinput0", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
}
DLOPENED = ("libxcb-cursor.so.0",)  # Qt >= 6.5 loads it at run time: ldd cannot see it
HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "eglfs", "linuxfb", "vkkhrdisplay")


def xcb_plugin() -> Path | None:
    """PySide6's xcb platform plugin, found without importing Qt."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        for plugin in (Path(base) / "Qt" / "plugins" / "platforms" / "libqxcb.so",):
            if plugin.exists():
                return plugin
    return None


def missing_libraries(library: Path, dlopened: tuple[str, ...] = ()) -> list[str]:
    """Shared libraries ``library`` needs that the dynamic loader cannot find (sorted, unique)."""
    try:
        out = subprocess.run(["ldd", str(library)], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    missing = {line.split("=>")[0].strip() for line in out.splitlines() if "not found" in line}
    for name in dlopened:
        try:
            ctypes.CDLL(name)
        except OSError:
            missing.add(name)
    return sorted(missing)


def install_commands(missing: list[str]) -> tuple[str, str]:
    """The apt-get and dnf commands that install ``missing``."""
    debian = sorted({PACKAGES.get(m, (m, m))[0] for m in missing})
    fedora = sorted({PACKAGES.get(m, (m, m))[1] for m in missing})
    return f"sudo apt-get install -y {' '.join(debian)}", f"sudo dnf install -y {' '.join(fedora)}"


def describe_missing(missing: list[str]) -> str:
    apt, dnf = install_commands(missing)
    return (
        f"the window cannot open: Qt's xcb plugin needs system libraries that are not installed "
        f"({', '.join(missing)}). Install them with: {apt} (Debian/Ubuntu) or {dnf} (Fedora)"
    )


def desktop_problem(env: dict[str, str] | None = None) -> tuple[int, str] | None:
    """``(exit code, one-line message)`` when the window cannot open here, else ``None``."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux"):
        return None
    platform = env.get("QT_QPA_PLATFORM", "").split(":")[0]
    if platform in HEADLESS_PLATFORMS:
        return None
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return 2, (
            "no display: the window needs a desktop session (DISPLAY and WAYLAND_DISPLAY are unset). "
            "On a server, run it under a virtual display (xvfb-run fcn-gui ...) or use the "
            "command line: fcn-gui segment|train|eval|export|import|export-model|info --help"
        )
    plugin = xcb_plugin()
    if platform in ("", "xcb") and env.get("DISPLAY") and plugin is not None:
        missing = missing_libraries(plugin, DLOPENED)
        if missing:
            return 1, describe_missing(missing)
    return None


def main(argv: list[str] | None = None) -> int:
    """Check; with ``--install``, install missing libraries with apt-get when running as root."""
    args = sys.argv[1:] if argv is None else argv
    problem = desktop_problem()
    if problem is None:
        return 0
    code, message = problem
    plugin = xcb_plugin()
    missing = missing_libraries(plugin, DLOPENED) if plugin is not None else []
    if "--install" in args and missing and os.geteuid() == 0 and shutil.which("apt-get"):
        packages = install_commands(missing)[0].split()[3:]
        print(f"fcn-gui: installing {' '.join(packages)} for the window", file=sys.stderr)
        install = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
        if subprocess.run(install).returncode != 0:  # a fresh machine may have no package lists yet
            subprocess.run(["apt-get", "update"])
            subprocess.run(install)
        if desktop_problem() is None:
            return 0
        code, message = desktop_problem()
    print(f"fcn-gui: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())

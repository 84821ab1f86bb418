"""The window's dialogs: file and folder choosers, the export and download questions, errors,
the shortcut list and About. Each returns what the user chose (or ``None``) and does nothing else."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox, QWidget

from core.io.images import IMAGE_SUFFIXES
from core.io.slides import OPENSLIDE_SUFFIXES

DOWNLOADS = {
    "VGG16 ImageNet backbone for FCN-8s (528 MB; fine-tune before use)": ("vgg16-imagenet", "vgg16"),
    "FCN-ResNet50, 21 VOC classes (135 MB; predicts right away)": ("resnet50-voc", "resnet50"),
    "FCN-ResNet101, 21 VOC classes (208 MB; predicts right away)": ("resnet101-voc", "resnet101"),
}


def ask_images(parent: QWidget, start: str) -> list[str]:
    pattern = " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES | OPENSLIDE_SUFFIXES))
    files, _ = QFileDialog.getOpenFileNames(parent, "Open images", start, f"Images ({pattern})")
    return files


def ask_folder(parent: QWidget, title: str, start: str) -> str:
    return QFileDialog.getExistingDirectory(parent, title, start)


def ask_checkpoint(parent: QWidget, start: str) -> str:
    path, _ = QFileDialog.getOpenFileName(
        parent, "Load checkpoint", start, "Checkpoints (*.safetensors *.pth *.pt)"
    )
    return path


def ask_export(parent: QWidget, start: str) -> tuple[str, bool] | None:
    """The export folder and whether to export reviewed labels only."""
    folder = ask_folder(parent, "Export VOC dataset into", start)
    if not folder:
        return None
    answer = QMessageBox.question(
        parent,
        "Export VOC",
        "Export only reviewed labels?\n(No exports every predicted or edited label too.)",
    )
    return folder, answer == QMessageBox.StandardButton.Yes


def ask_download(parent: QWidget):
    """The ``core.model.weights`` source to download and the backbone it is for, or ``None``."""
    from core.model.weights import pretrained_source

    item, ok = QInputDialog.getItem(
        parent, "Download pretrained weights", "Weights to download from download.pytorch.org:",
        list(DOWNLOADS), 0, False,
    )  # fmt: skip
    if not ok:
        return None
    key, backbone = DOWNLOADS[item]
    source = pretrained_source(key)
    question = f"Download {source.filename} ({source.size_mb} MB) into {source.cache_path.parent}?"
    if QMessageBox.question(parent, "Download", question) != QMessageBox.StandardButton.Yes:
        return None
    return source, backbone


def ask_replace(parent: QWidget, image_id: str) -> bool:
    """May a new prediction replace the user's edits of ``image_id``?"""
    answer = QMessageBox.question(
        parent,
        "Replace your edits?",
        f"{image_id} has edits of yours. Replace its label with the new prediction?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


def show_error(parent: QWidget, text: str) -> None:
    """A non-blocking warning; a traceback after a blank line goes under "Show Details"."""
    box = QMessageBox(QMessageBox.Icon.Warning, "fcn-gui", text.split("\n\n")[0], parent=parent)
    if "\n\n" in text:
        box.setDetailedText(text)
    box.setWindowModality(Qt.WindowModality.WindowModal)
    box.show()


def show_shortcuts(parent: QWidget, actions: list[QAction]) -> None:
    rows = [
        (act.text().replace("&", ""), act.shortcut().toString())
        for act in actions
        if not act.shortcut().isEmpty() and not act.text().startswith("Class ")
    ]
    text = (
        "\n".join(f"{k:<12} {t}" for t, k in rows)
        + "\n1-9, 0       pick class 1-10\nWheel        zoom at cursor\nMiddle/Space-drag  pan"
    )
    box = QMessageBox(QMessageBox.Icon.Information, "Keyboard shortcuts", "", parent=parent)
    box.setText(f"<pre>{text}</pre>")
    box.exec()


def show_about(parent: QWidget) -> None:
    from core import __version__

    QMessageBox.about(
        parent,
        "About fcn-gui",
        f"fcn-gui {__version__}\nSemantic-segmentation labelling with FCN-32s/16s/8s.",
    )

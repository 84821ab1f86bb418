"""Right dock: the model in use, its metadata and warnings, device and tile size, load/download."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.base.choices import DEVICE_CHOICES
from core.base.limits import LIMITS


class ModelPanel(QWidget):
    """Shows ``ModelInfo``; emits the user's requests to the main window."""

    load_requested = Signal()
    download_requested = Signal()
    device_changed = Signal(str)
    tile_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = QLabel("Loading model…")
        self.name.setWordWrap(True)
        self.details = QLabel("")
        self.details.setWordWrap(True)
        self.warning = QLabel("")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(
            "QLabel { background: #fff3cd; color: #6b4e00; border: 1px solid #e0c36b; padding: 4px; }"
        )
        self.warning.hide()
        self.device = QComboBox()
        self.device.addItems(DEVICE_CHOICES)
        self.device.setToolTip("auto picks CUDA, then Apple MPS, then the CPU")
        tile = LIMITS["tile"]
        self.tile = QSpinBox()
        # The minimum, one under the smallest valid tile, reads "auto" (whole image when it fits).
        self.tile.setRange(int(tile.low) - 1, int(tile.high))
        self.tile.setSingleStep(128)
        self.tile.setSpecialValueText("auto")
        self.tile.setSuffix(" px")
        self.tile.setToolTip("Largest tile side for big images; auto = whole image when it fits in memory")
        form = QFormLayout()
        form.addRow("Device", self.device)
        form.addRow("Tile size", self.tile)
        self.load = QPushButton("Load checkpoint…")
        self.download = QPushButton("Download pretrained…")
        buttons = QHBoxLayout()
        buttons.addWidget(self.load)
        buttons.addWidget(self.download)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.name)
        layout.addWidget(self.details)
        layout.addWidget(self.warning)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addStretch(1)
        self.load.clicked.connect(self.load_requested)
        self.download.clicked.connect(self.download_requested)
        self.device.currentTextChanged.connect(self.device_changed)
        self.tile.valueChanged.connect(lambda v: self.tile_changed.emit(0 if v == self.tile.minimum() else v))

    def show_info(self, info, device_name: str, checkpoint: str | None) -> None:
        parts = (f"<b>{info.variant.upper()}</b>", info.named_backbone, f"{info.num_classes} classes")
        self.name.setText(" · ".join(filter(None, parts)))
        lines = [f"Weights: {checkpoint or info.source}", f"Running on: {device_name}"]
        if info.scale != 1.0:
            lines.append(f"Sees images at {info.scale:g}x (small objects, finer edges)")
        best = info.training.get("best_val_miou")
        if best is not None:
            lines.append(f"Best validation mIoU: {best:.3f} ({info.training.get('steps', '?')} steps)")
        self.details.setText("\n".join(lines))
        self.show_warning(
            None
            if info.trained
            else "Untrained weights: predictions are meaningless until the model has learnt "
            "from your first reviewed images (correct one, press R) or you load a checkpoint."
        )

    def show_model(self, models) -> None:
        """What ``models`` (the session's ``ModelManager``) has in use, or that it has none."""
        if models.model is None:
            self.name.setText("No model loaded")
            self.details.setText("")
            return
        ckpt = str(models.checkpoint) if models.checkpoint else None
        self.show_info(models.info, models.predictor.device_name, ckpt)

    def show_warning(self, text: str | None) -> None:
        self.warning.setText(text or "")
        self.warning.setVisible(bool(text))

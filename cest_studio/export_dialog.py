"""The export dialog, and the folder it proposes: the last one used (remembered), else one in the
user's documents — never beside the input (the sample photo lies inside the installation)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLineEdit,
    QWidget,
)

from cest_studio.widgets import path_row


def export_folder(last: str | None, source: str | None) -> Path:
    """Where to export ``source``'s face: beside the last export (a ``STEM_export`` folder is renamed for
    this input; one the person picked is proposed again as it was), else Documents/cest-studio."""
    stem = f"{Path(source or 'face').stem}_export"
    if last:
        last_path = Path(str(last))
        return last_path.with_name(stem) if last_path.name.endswith("_export") else last_path
    documents = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    return Path(documents or Path.home()) / "cest-studio" / stem


class ExportDialog(QDialog):
    """Where and what to export. ``options()`` is what :meth:`MainWindow.export_to` takes."""

    def __init__(self, folder: str, video: bool, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Export")
        self.folder = QLineEdit(folder)
        row = path_row(self.folder, self._browse)
        self.name = QLineEdit("face")
        self.obj = QCheckBox("OBJ with its texture (.obj + .mtl + .png)")
        self.ply = QCheckBox("PLY (vertex colours)")
        self.glb = QCheckBox("GLB (glTF binary, textured)")
        self.maps = QCheckBox("Maps as PNG (render, albedo, shading, normals, depth, texture) + params.json")
        self.screenshot = QCheckBox("Screenshot of the 3D view (PNG)")
        self.bake = QCheckBox("Bake the current light into the mesh texture")
        for box in (self.obj, self.ply, self.glb, self.maps, self.screenshot):
            box.setChecked(True)
        self.sequence = QCheckBox("The whole video: a mesh per frame + the re-rendered MP4")
        self.sequence_format = QComboBox()
        self.sequence_format.addItems(["obj", "ply", "glb", "none (MP4 only)"])
        form = QFormLayout(self)
        form.addRow("Folder", row)
        form.addRow("Name", self.name)
        for box in (self.obj, self.ply, self.glb, self.maps, self.screenshot, self.bake):
            form.addRow(box)
        if video:
            self.sequence.setChecked(True)
            form.addRow(self.sequence)
            form.addRow("Per-frame meshes", self.sequence_format)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self._video = video

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def options(self) -> dict:
        fmt = self.sequence_format.currentText()
        return {
            "folder": self.folder.text().strip(),
            "name": self.name.text().strip() or "face",
            "obj": self.obj.isChecked(),
            "ply": self.ply.isChecked(),
            "glb": self.glb.isChecked(),
            "maps": self.maps.isChecked(),
            "screenshot": self.screenshot.isChecked(),
            "bake_light": self.bake.isChecked(),
            "sequence": self._video and self.sequence.isChecked(),
            "sequence_format": None if fmt.startswith("none") else fmt,
        }

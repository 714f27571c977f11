"""The window's actions, menus and toolbar, as tables: what each action says, does and is bound to.

A slot is named by its attribute path on the window (``"tab.controls.reset_pose"``) and looked up
when the action fires, so an action can be declared before the widget it drives exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QLabel, QMainWindow, QMenu, QToolBar


@dataclass(frozen=True)
class ActionSpec:
    name: str  # the window attribute that holds the QAction
    text: str
    slot: str  # attribute path on the window of what the action calls
    shortcut: str | QKeySequence.StandardKey | None = None
    tip: str = ""
    enabled: bool = True
    checkable: bool = False


ACTIONS = (
    ActionSpec(
        "open_action", "&Open…", "open_dialog", QKeySequence.StandardKey.Open, "Open a photo or a video"
    ),
    ActionSpec(
        "live_action",
        "&Live camera or stream…",
        "live.dialog",
        "Ctrl+L",
        "Reconstruct a camera, a stream URL or a video played live",
    ),
    ActionSpec(
        "record_live_action",
        "&Record live…",
        "live.toggle_recording",
        "Ctrl+R",
        "Record the live face as an animation",
        enabled=False,
        checkable=True,
    ),
    ActionSpec(
        "stop_live_action", "S&top live", "live.stop", "Ctrl+Shift+L", "Stop the live camera", enabled=False
    ),
    ActionSpec(
        "open_second_action",
        "Open &second face…",
        "open_second_dialog",
        "Ctrl+Shift+O",
        "A second photo whose reflectance or light can be borrowed",
    ),
    ActionSpec(
        "export_action",
        "&Export…",
        "export_dialog",
        "Ctrl+E",
        "Export meshes (OBJ, PLY, GLB), maps and a screenshot",
        enabled=False,
    ),
    ActionSpec(
        "export_animation_action",
        "Export &animation…",
        "animation.dialog",
        "Ctrl+Shift+E",
        "A reconstructed video as an animated, textured head (animation.glb) and ARKit curves (blendshapes.csv)",
    ),
    ActionSpec(
        "screenshot_action", "Save 3D view &screenshot…", "screenshot_dialog", "Ctrl+Shift+S", enabled=False
    ),
    ActionSpec("quit_action", "&Quit", "close", "Ctrl+Q"),
    ActionSpec("reset_view_action", "&Reset view", "reset_view", "R", "Reset the 3D view"),
    ActionSpec("reset_pose_action", "Reset &pose", "tab.controls.reset_pose", "Shift+R"),
    ActionSpec("cancel_action", "&Cancel video reconstruction", "cancel_video", "Esc"),
    ActionSpec("add_model_action", "Add a model file…", "add_model_dialog"),
    ActionSpec("about_action", "About CEST Studio", "about"),
)

RECENT = "recent"  # where File's "Open recent" submenu goes
MENUS = (  # (title, the actions in order; None is a separator)
    (
        "&File",
        (
            "open_action",
            RECENT,
            "live_action",
            "record_live_action",
            "stop_live_action",
            None,
            "open_second_action",
            None,
            "export_action",
            "export_animation_action",
            "screenshot_action",
            None,
            "quit_action",
        ),
    ),
    ("&View", ("reset_view_action", "reset_pose_action", "cancel_action")),
    ("&Model", ("add_model_action",)),
    ("&Help", ("about_action",)),
)
TOOLBAR = ("open_action", "export_action", "reset_view_action")


def build_actions(window: QMainWindow, specs=ACTIONS) -> None:
    """Create each action as ``window.<name>``, also added to the window (shortcuts work anywhere)."""
    for spec in specs:
        action = QAction(spec.text, window)
        if spec.shortcut is not None:
            action.setShortcut(QKeySequence(spec.shortcut))
        if spec.tip:
            action.setStatusTip(spec.tip)
        action.triggered.connect(lambda _checked=False, slot=spec.slot: attrgetter(slot)(window)())
        action.setCheckable(spec.checkable)
        action.setEnabled(spec.enabled)
        window.addAction(action)
        setattr(window, spec.name, action)


def build_menus(window: QMainWindow) -> QMenu:
    """The menu bar from MENUS; returns the (empty) "Open recent" submenu."""
    recent = None
    for title, entries in MENUS:
        menu = window.menuBar().addMenu(title)
        for entry in entries:
            if entry is None:
                menu.addSeparator()
            elif entry == RECENT:
                recent = menu.addMenu("Open &recent")
            else:
                menu.addAction(getattr(window, entry))
    assert recent is not None
    return recent


def build_toolbar(window: QMainWindow) -> QComboBox:
    """The toolbar from TOOLBAR, then the model selector; returns the selector."""
    toolbar = QToolBar("Main")
    toolbar.setObjectName("main-toolbar")
    toolbar.setMovable(False)
    for name in TOOLBAR:
        toolbar.addAction(getattr(window, name))
    toolbar.addSeparator()
    toolbar.addWidget(QLabel(" Model: "))
    combo = QComboBox()
    combo.setMinimumWidth(240)
    combo.setToolTip("Which model reconstructs the faces; switching re-runs the current face")
    toolbar.addWidget(combo)
    window.addToolBar(toolbar)
    return combo

"""CEST Studio, the desktop app (PySide6 + pyvistaqt). Holds no maths: the engine does the work.

Importing this package is cheap; the engine, torch and VTK load on background threads.
"""

__version__ = "0.1.0"

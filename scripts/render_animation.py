"""Render animation.glb at a few moments with VTK's own glTF reader (an independent viewer: it
applies the morph targets and the node's animation itself), side by side into one PNG.

    xvfb-run -a python scripts/render_animation.py OUT/NAME/animation.glb OUT/NAME/blendshapes.csv PNG [--fps 30]

The moments: the calmest frame, then the frames where JawOpen, MouthSmileLeft, EyeBlinkLeft and
MouthPucker peak (read from blendshapes.csv). Needs vtk (the app's extra).
"""

from __future__ import annotations

import argparse
import csv

import numpy as np
from PIL import Image

CURVES = ("JawOpen", "MouthSmileLeft", "EyeBlinkLeft", "MouthPucker")


def moments(csv_path: str) -> list[tuple[str, int]]:
    with open(csv_path) as file:
        rows = list(csv.reader(file))
    head, values = rows[0], np.array([[float(v) for v in row[2:]] for row in rows[1:]])
    picked = [("calm", int(np.argmin(values[:, :52].sum(1))))]
    return picked + [(name, int(np.argmax(values[:, head.index(name) - 2]))) for name in CURVES]


def _mesh_at(reader, seconds: float):
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    reader.UpdateTimeStep(seconds)
    blocks = reader.GetOutput().NewIterator()
    blocks.InitTraversal()
    mesh = vtk.vtkPolyData()
    mesh.DeepCopy(blocks.GetCurrentDataObject())
    uv = vtk_to_numpy(mesh.GetPointData().GetTCoords())
    uv[:, 1] = 1 - uv[:, 1]  # the reader keeps glTF's v (down the image); VTK textures count v up
    return mesh


def render(glb: str, csv_path: str, out: str, fps: float, size=(360, 420)) -> None:
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    reader = vtk.vtkGLTFReader()
    reader.SetFileName(glb)
    reader.UpdateInformation()
    reader.EnableAnimation(0)
    reader.ApplyDeformationsToGeometryOn()
    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(*size)
    renderer = vtk.vtkRenderer()
    renderer.SetBackground(0.12, 0.13, 0.15)
    window.AddRenderer(renderer)
    tiles = []
    for _, frame in moments(csv_path):
        renderer.RemoveAllViewProps()
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputData(_mesh_at(reader, frame / fps))
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.SetTexture(reader.GetTexture(0).GetVTKTexture())
        actor.GetProperty().SetAmbient(0.35)
        actor.GetProperty().SetDiffuse(0.75)
        renderer.AddActor(actor)
        camera = renderer.GetActiveCamera()
        camera.SetPosition(0, 0, 1)
        camera.SetFocalPoint(0, 0, 0)
        camera.SetViewUp(0, 1, 0)
        renderer.ResetCamera()
        camera.Zoom(1.4)
        window.Render()
        grab = vtk.vtkWindowToImageFilter()
        grab.SetInput(window)
        grab.Update()
        image = grab.GetOutput()
        w, h, _ = image.GetDimensions()
        tiles.append(vtk_to_numpy(image.GetPointData().GetScalars()).reshape(h, w, -1)[::-1, :, :3])
    Image.fromarray(np.concatenate(tiles, 1)).save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("glb")
    parser.add_argument("csv")
    parser.add_argument("png")
    parser.add_argument(
        "--fps", type=float, default=30.0, help="the video's frame rate (blendshapes.csv rows)"
    )
    args = parser.parse_args()
    render(args.glb, args.csv, args.png, args.fps)


if __name__ == "__main__":
    main()

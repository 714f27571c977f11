"""The app's export (cest_studio.tasks.export_face, no Qt): the OBJ's texture is the UV albedo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SAMPLE = Path(__file__).resolve().parents[2] / "resources" / "samples" / "astronaut.png"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from cest_studio.tasks import Context, EditState, EngineSession, ModelSpec

    session = EngineSession(threads=1)
    ctx = Context()
    session.load_model(ctx, ModelSpec("fit"))
    face = session.reconstruct_image(ctx, str(SAMPLE))
    folder = tmp_path_factory.mktemp("export")
    options = {"name": "face", "obj": True, "ply": True, "glb": True, "maps": True}
    files = session.export_face(ctx, face, EditState(), None, str(folder), options)
    return folder, files


def test_obj_map_kd_is_the_uv_texture(exported):
    import trimesh

    folder, _ = exported
    obj = trimesh.load(folder / "face.obj", force="mesh", process=False)
    glb = trimesh.load(folder / "face.glb", force="mesh", process=False)
    mtl = (folder / "face.mtl").read_text()
    kd = next(line.split()[1] for line in mtl.splitlines() if line.startswith("map_Kd"))
    assert kd == "face_albedo.png"
    uv_texture = np.asarray(glb.visual.material.baseColorTexture.convert("RGB"))
    obj_texture = np.asarray(obj.visual.material.image.convert("RGB"))
    assert obj_texture.shape == uv_texture.shape
    assert np.array_equal(obj_texture, uv_texture), "the OBJ's map_Kd must be the UV albedo, not a map"


def test_the_file_list_counts_each_file_once(exported):
    folder, files = exported
    assert len(files) == len(set(files))
    on_disk = {str(p) for p in folder.iterdir() if p.is_file()}
    assert set(files) == on_disk

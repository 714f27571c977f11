import numpy as np
import pytest
import trimesh

from engine.io.mesh import MeshData, write_mesh, write_png


@pytest.fixture()
def mesh(face_model):
    gen = np.random.default_rng(0)
    texture = (gen.random((64, 64, 3)) * 255).astype(np.uint8)
    return MeshData(face_model.mean.numpy(), face_model.faces.numpy(), face_model.uvs.numpy(), texture)


def test_obj_round_trip_keeps_geometry_uvs_and_texture(tmp_path, mesh):
    files = write_mesh(mesh, tmp_path / "face.obj")
    names = sorted(p.name for p in files)
    assert names == ["face.mtl", "face.obj", "face_albedo.png"]
    assert "map_Kd face_albedo.png" in (tmp_path / "face.mtl").read_text()
    loaded = trimesh.load(tmp_path / "face.obj", process=False, maintain_order=True)
    assert loaded.vertices.shape == mesh.vertices.shape
    assert np.allclose(loaded.vertices, mesh.vertices, atol=1e-5)
    assert np.array_equal(loaded.faces, mesh.faces)
    assert np.allclose(loaded.visual.uv, mesh.uvs, atol=1e-5)
    image = np.asarray(loaded.visual.material.image.convert("RGB"))
    assert np.array_equal(image, mesh.texture)


def test_glb_round_trip_keeps_texture(tmp_path, mesh):
    write_mesh(mesh, tmp_path / "face.glb")
    scene = trimesh.load(tmp_path / "face.glb", process=False)
    loaded = next(iter(scene.geometry.values()))
    assert len(loaded.faces) == len(mesh.faces)
    assert np.allclose(np.sort(loaded.vertices, axis=0), np.sort(mesh.vertices, axis=0), atol=1e-4)
    assert loaded.visual.uv is not None
    assert loaded.visual.material.baseColorTexture.size == (64, 64)


def test_ply_round_trip_keeps_vertex_colours(tmp_path, mesh):
    write_mesh(mesh, tmp_path / "face.ply")
    loaded = trimesh.load(tmp_path / "face.ply", process=False)
    assert np.allclose(loaded.vertices, mesh.vertices, atol=1e-5)
    assert np.array_equal(loaded.visual.vertex_colors[:, :3], mesh.vertex_colors()[:, :3])


def test_unknown_format_is_refused(tmp_path, mesh):
    with pytest.raises(ValueError, match="unknown mesh format"):
        write_mesh(mesh, tmp_path / "face.stl")


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "map.png"
    write_png(np.zeros((4, 4, 3), np.uint8), target)
    before = target.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", full_disk)
    with pytest.raises(OSError):
        write_png(np.full((4, 4, 3), 255, np.uint8), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["map.png"]  # no temporary left behind


def test_leftovers_of_a_killed_writer_are_removed(tmp_path):
    from engine.io.atomic import remove_leftovers

    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"good")
    (tmp_path / ".checkpoint.pt.abc123.tmp").write_bytes(b"half")
    (tmp_path / "other.txt").write_text("keep")
    removed = remove_leftovers(target)
    assert [p.name for p in removed] == [".checkpoint.pt.abc123.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "other.txt"]

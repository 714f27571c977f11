"""Tests of the differentiable renderer (engine/render.py); `python -m tests.test_render` benchmarks it."""

from __future__ import annotations

import math
import statistics
import sys
import time

import pytest
import torch

from engine import render as R
from engine.sh import SH_CONST, ambient_light

# ------------------------------------------------------------------------------------ test meshes


def face_like_mesh(n: int = 55) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Front half of an ellipsoid with a nose, ~face-sized in cm: n*n vertices, 2(n-1)^2 triangles.

    One UV per vertex (a regular grid, v up), triangles counter-clockwise seen from +z.
    """
    v, u = torch.meshgrid(torch.linspace(0, 1, n), torch.linspace(0, 1, n), indexing="ij")
    theta, phi = (u - 0.5) * math.pi * 0.95, (v - 0.5) * math.pi * 0.95
    x, y = 7 * theta.sin() * phi.cos(), 9 * phi.sin()
    z = 6 * theta.cos() * phi.cos() + 2.0 * torch.exp(-(x**2 + 0.3 * (y + 0.5) ** 2) / 1.5)
    verts = torch.stack([x, y, z], -1).reshape(-1, 3)
    return verts, grid_faces(n, n), torch.stack([u, v], -1).reshape(-1, 2)


def grid_faces(rows: int, cols: int) -> torch.Tensor:
    """Triangles of a rows x cols vertex grid whose row index grows with y (up) and column with x."""
    idx = torch.arange(rows * cols).reshape(rows, cols)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    return torch.cat([torch.stack([a, b, c], -1).reshape(-1, 3), torch.stack([a, c, d], -1).reshape(-1, 3)])


def project(verts: torch.Tensor, yaw: float = 0.0, pitch: float = 0.0, scale: float = 1.2 / 18):
    """Model-space (V, 3) -> camera-space and crop-NDC (1, V, 3), as docs/conventions.md."""
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    ry = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = torch.tensor([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    cam = (verts @ (ry @ rx).T.to(verts.dtype))[None]
    return cam, cam * cam.new_tensor([scale, -scale, scale])


def to_ndc(pixels: list[list[float]], size: int, depth: float = 0.0) -> torch.Tensor:
    """Pixel coordinates (x, y; integers are pixel centres) -> (1, V, 3) crop NDC at one depth."""
    p = torch.tensor(pixels, dtype=torch.float32)
    return torch.cat([(p + 0.5) / size * 2 - 1, torch.full((len(p), 1), depth)], 1)[None]


def quad(z: float = 0.0, extent: float = 1.0):
    """A 2x2-vertex square over [-extent, extent]^2 in NDC, UV v pointing up the image."""
    verts = torch.tensor([[-1, 1, z], [1, 1, z], [-1, -1, z], [1, -1, z]], dtype=torch.float32) * extent
    verts[:, 2] = z
    uvs = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    return verts[None], grid_faces(2, 2), uvs


def inside(px: float, py: float, tri: list[list[float]]) -> bool:
    """Exact point-in-triangle test of a pixel centre (either winding)."""

    def edge(a, b):
        return (b[0] - a[0]) * (py - a[1]) - (b[1] - a[1]) * (px - a[0])

    signs = [edge(tri[0], tri[1]), edge(tri[1], tri[2]), edge(tri[2], tri[0])]
    return all(s > 0 for s in signs) or all(s < 0 for s in signs)


# -------------------------------------------------------------------------------------- rasterize


TRIANGLE = [[1.2, 1.3], [2.1, 6.8], [6.7, 1.6]]  # pixels, counter-clockwise seen from the viewer


def test_single_triangle_covers_known_pixels():
    size = 8
    frags = R.rasterize(to_ndc(TRIANGLE, size), torch.tensor([[0, 1, 2]]), size, size)
    expected = torch.tensor([[inside(x, y, TRIANGLE) for x in range(size)] for y in range(size)])
    assert expected.sum() > 10
    assert torch.equal(frags.face_index[0] >= 0, expected)
    assert torch.equal(frags.mask[0, 0].bool(), expected)


def test_back_faces_are_culled_unless_asked():
    size = 8
    verts, clockwise = to_ndc(TRIANGLE, size), torch.tensor([[0, 2, 1]])
    assert (R.rasterize(verts, clockwise, size, size).face_index < 0).all()
    frags = R.rasterize(verts, clockwise, size, size, cull_backfaces=False)
    front = R.rasterize(verts, torch.tensor([[0, 1, 2]]), size, size)
    assert torch.equal(frags.face_index, front.face_index)


def test_closer_triangle_wins():
    size = 16
    tri_a, tri_b = [[1.3, 1.2], [3.3, 14.2], [14.3, 2.2]], [[2.6, 2.7], [8.4, 15.1], [15.2, 9.3]]
    in_a = torch.tensor([[inside(x, y, tri_a) for x in range(size)] for y in range(size)])
    in_b = torch.tensor([[inside(x, y, tri_b) for x in range(size)] for y in range(size)])
    assert (in_a & in_b).sum() > 5 and (in_a & ~in_b).any() and (in_b & ~in_a).any()
    for depth_a, depth_b in ((0.5, -0.5), (-0.3, 0.9)):
        verts = torch.cat([to_ndc(tri_a, size, depth_a), to_ndc(tri_b, size, depth_b)], 1)
        first, second = (in_a, in_b) if depth_a > depth_b else (in_b, in_a)
        id_first, id_second = (0, 1) if depth_a > depth_b else (1, 0)
        expected = torch.where(first, id_first, torch.where(second, id_second, -1))
        for order in ([[0, 1, 2], [3, 4, 5]], [[3, 4, 5], [0, 1, 2]]):
            faces = torch.tensor(order)
            frags = R.rasterize(verts, faces, size, size)
            triangle = torch.where(frags.face_index[0] >= 0, faces[frags.face_index[0], 0] // 3, -1)
            assert torch.equal(triangle, expected)


@pytest.mark.parametrize("shape", [(16, 16), (6, 10), (33, 17)])
def test_full_screen_quad_covers_everything(shape):
    verts, faces, _ = quad()
    frags = R.rasterize(verts, faces, *shape)
    assert (frags.face_index >= 0).all()  # no crack along the diagonal through pixel centres


def test_barycentrics_sum_to_one_and_reproduce_pixel_centres():
    verts, faces, _ = face_like_mesh(21)
    _, ndc = project(verts, yaw=0.4, pitch=0.2)
    size = 64
    frags = R.rasterize(ndc, faces, size, size)
    pixels = frags.pixels
    assert len(pixels.index) > 0.1 * size * size
    assert torch.allclose(pixels.bary.sum(1), torch.ones(len(pixels.index)), atol=1e-5)
    assert (pixels.bary > -1e-4).all()
    corners = (ndc[0, :, :2][faces[pixels.face]] + 1) * size / 2 - 0.5  # (N, 3, 2) pixel coords
    position = (pixels.bary[..., None] * corners).sum(1)
    expected = torch.stack([pixels.index % size, pixels.index // size], 1).float()
    assert (position - expected).abs().max() < 1e-3
    dense = frags.bary.reshape(-1, 3)
    assert torch.equal(dense[pixels.index], pixels.bary)


def test_interpolate_without_vertex_positions_uses_fragment_barycentrics():
    verts, faces, uvs = quad(extent=0.8)
    frags = R.rasterize(verts, faces, 12, 12)
    a = R.interpolate(uvs[None], faces, frags)
    b = R.interpolate(uvs[None], faces, frags, verts)
    assert torch.allclose(a, b, atol=1e-5)
    assert (a[~frags.face_index.ge(0)] == 0).all()


# ----------------------------------------------------------------------------------- gradients


def test_interpolate_gradcheck():
    verts = to_ndc([[0.3, 0.2], [0.9, 5.6], [5.4, 0.7], [5.8, 5.1]], 6).double()
    faces = torch.tensor([[0, 1, 2], [2, 1, 3]])
    frags = R.rasterize(verts, faces, 6, 6)
    attrs = torch.randn(1, 4, 2, dtype=torch.double, requires_grad=True)
    verts.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, v: R.interpolate(a, faces, frags, v), (attrs, verts))


def test_vertex_normals_gradcheck():
    verts, faces, _ = face_like_mesh(4)
    verts = verts[None].double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: R.vertex_normals(v, faces), (verts,))


def test_render_gradcheck():
    verts, faces, uvs = face_like_mesh(4)
    cam, ndc = project(verts.double(), yaw=0.3, scale=0.08)
    albedo, light = torch.rand(1, 3, 4, 4, dtype=torch.double), torch.randn(1, 9, 3, dtype=torch.double)
    renderer = R.Renderer(faces, uvs)
    frags = renderer.rasterize(ndc, 10)

    def image(cam, ndc, albedo, light):
        assert torch.equal(renderer.rasterize(ndc, 10).face_index, frags.face_index)
        return renderer.render(cam, ndc, albedo, light, 10).image

    inputs = [t.requires_grad_(True) for t in (cam, ndc, albedo, light)]
    assert torch.autograd.gradcheck(image, inputs, fast_mode=True)


def test_vertex_normals_of_a_sphere_point_outwards():
    verts, faces, _ = face_like_mesh(15)
    sphere = torch.nn.functional.normalize(verts, dim=1)[None] * 3
    normals = R.vertex_normals(sphere, faces)
    assert torch.allclose(normals.norm(dim=-1), torch.ones(1, len(verts)), atol=1e-5)
    cosine = (normals * sphere / 3).sum(-1)
    assert cosine.min() > 0.98


def test_vertex_normals_are_area_weighted():
    verts = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]])
    faces = torch.tensor([[0, 1, 2], [0, 3, 1]])  # normals +z (area 1/2) and +y (area 1/2)
    n = R.vertex_normals(verts, faces)
    assert torch.allclose(n[0, 0], torch.tensor([0, 1, 1]) / math.sqrt(2), atol=1e-6)
    verts[0, 3, 2] = 3  # the +y face three times larger
    n = R.vertex_normals(verts, faces)
    assert torch.allclose(n[0, 0], torch.tensor([0, 3.0, 1]) / math.sqrt(10), atol=1e-6)
    assert torch.allclose(n, R.vertex_normals(verts, faces, R.vertex_face_matrix(faces, 4)))


def test_photometric_gradient_moves_a_vertex_toward_the_target():
    rows = cols = 3  # a 3x3 vertex grid over the screen; its centre vertex is the unknown
    y, x = torch.meshgrid(torch.linspace(0.9, -0.9, rows), torch.linspace(-0.9, 0.9, cols), indexing="ij")
    flat = torch.stack([x, y, torch.zeros_like(x)], -1).reshape(1, -1, 3)  # NDC, rows going up
    cam = flat * torch.tensor([1.0, -1.0, 1.0])
    uvs = torch.stack([(x + 1) / 2, (1 - y) / 2], -1).reshape(-1, 2)
    ramp = torch.linspace(0, 1, 32).expand(32, 32)
    texture = torch.stack([ramp, ramp.T, torch.full_like(ramp, 0.5)])[None]
    renderer, light = R.Renderer(grid_faces(rows, cols), uvs), ambient_light(1)
    target_ndc = flat.clone()
    target_ndc[0, 4, :2] += torch.tensor([0.15, -0.1])
    target = renderer.render(cam, target_ndc, texture, light, 32).image

    def loss_at(ndc):
        return (renderer.render(cam, ndc, texture, light, 32).image - target).square().mean()

    ndc = flat.clone().requires_grad_(True)
    loss = loss_at(ndc)
    loss.backward()
    step = -ndc.grad[0, 4, :2]
    assert torch.dot(step, torch.tensor([0.15, -0.1])) > 0  # downhill is toward the target
    with torch.no_grad():
        moved = flat.clone()
        moved[0, 4, :2] += 0.05 * step / step.norm()
        assert loss_at(moved) < 0.9 * loss


# ------------------------------------------------------------------------- texture and shading


def test_texture_orientation_top_row_is_top_of_image():
    verts, faces, uvs = quad()
    texture = torch.zeros(1, 3, 4, 4)
    texture[0, 0, 0] = 1  # top row (v = 1) red
    texture[0, 2, -1] = 1  # bottom row (v = 0) blue
    texture[0, 1, :, 0] = 1  # left column (u = 0) green
    out = R.render(verts, verts, faces, uvs, texture, ambient_light(1), 16)
    image = out.image[0]
    assert image[0, 0, 8] > 0.99 and image[2, 0, 8] < 0.01  # red at the top
    assert image[2, -1, 8] > 0.99 and image[0, -1, 8] < 0.01  # blue at the bottom
    assert image[1, 8, 0] > 0.99 and image[1, 8, -1] < 0.01  # green on the left
    assert torch.allclose(out.uv[0, 0, 0], torch.tensor([1 / 32, 1 - 1 / 32]), atol=1e-5)


def test_sample_texture_matches_grid_sample_convention():
    texture = torch.arange(16.0).reshape(1, 1, 4, 4)
    uv = torch.tensor([[[[0.125, 0.875], [0.875, 0.125]]]])  # texel centres: top-left, bottom-right
    assert R.sample_texture(texture, uv).flatten().tolist() == [0.0, 15.0]


def test_ambient_light_gives_the_albedo():
    verts, faces, uvs = face_like_mesh(21)
    cam, ndc = project(verts, yaw=0.3)
    albedo = torch.rand(1, 3, 16, 16)
    out = R.render(cam, ndc, faces, uvs, albedo, ambient_light(1), 48)
    mask = out.mask.bool().expand(-1, 3, -1, -1)
    assert mask.any()
    assert torch.allclose(out.image, out.albedo, atol=1e-6)
    assert torch.allclose(out.shading[mask], torch.ones(1), atol=1e-5)
    assert (out.image[~mask] == 0).all()
    assert torch.allclose(out.albedo, R.sample_texture(albedo, out.uv) * out.mask)


def test_side_light_brightens_the_facing_side_and_normals_face_the_camera():
    verts, faces, uvs = face_like_mesh(31)
    cam, ndc = project(verts)
    light = ambient_light(1, 0.5)
    light[0, 1] = 0.5 / SH_CONST[1]  # from +x: the viewer's right
    out = R.render(cam, ndc, faces, uvs, torch.full((1, 3, 8, 8), 0.8), light, 64)
    left, right = out.image[0, :, :, :32].sum(), out.image[0, :, :, 32:].sum()
    assert right > 1.5 * left
    covered = out.mask[0, 0].bool()
    assert torch.allclose(out.normals[0].norm(dim=0)[covered], torch.ones(1), atol=1e-5)
    assert (out.normals[0, 2][covered] > -0.05).all()
    assert (out.depth[0, 0][covered] > 0).all() and (out.depth[0, 0][~covered] == 0).all()


def test_background_is_composited():
    verts, faces, uvs = quad(extent=0.5)
    background = torch.full((1, 3, 8, 8), 0.25)
    out = R.render(verts, verts, faces, uvs, torch.ones(1, 3, 2, 2), ambient_light(1), 8, background)
    assert torch.allclose(out.image, out.mask + 0.25 * (1 - out.mask))


def test_shade_reuses_fragments_and_matches_a_full_render():
    verts, faces, uvs = face_like_mesh(21)
    cam, ndc = project(verts, yaw=-0.3)
    renderer = R.Renderer(faces, uvs)
    first = renderer.render(cam, ndc, torch.rand(1, 3, 8, 8), ambient_light(1), 40)
    albedo, light = torch.rand(1, 3, 8, 8), torch.randn(1, 9, 3) * 0.3
    relit = renderer.shade(first, albedo, light)
    full = renderer.render(cam, ndc, albedo, light, 40)
    assert relit.fragments is first.fragments
    for name in ("image", "albedo", "shading", "normals", "uv", "depth", "mask"):
        assert torch.allclose(getattr(relit, name), getattr(full, name), atol=1e-6), name


def test_a_batch_renders_like_its_images_one_by_one():
    verts, faces, uvs = face_like_mesh(21)
    views = [project(verts, yaw=a) for a in (-0.5, 0.0, 0.7)]
    views[1] = (views[1][0], views[1][1] * torch.tensor([0.5, 0.5, 1.0]))  # a smaller face
    cam, ndc = torch.cat([v[0] for v in views]), torch.cat([v[1] for v in views])
    albedo, light = torch.rand(3, 3, 8, 8), torch.randn(3, 9, 3) * 0.3
    renderer = R.Renderer(faces, uvs)
    batch = renderer.render(cam, ndc, albedo, light, (40, 32))
    for i in range(3):
        one = renderer.render(cam[i : i + 1], ndc[i : i + 1], albedo[i : i + 1], light[i : i + 1], (40, 32))
        assert torch.allclose(batch.image[i], one.image[0], atol=1e-6)
        assert torch.equal(batch.fragments.face_index[i], one.fragments.face_index[0])


def test_an_empty_image_in_a_batch():
    verts, faces, uvs = quad(extent=0.5)
    ndc = torch.cat([verts, verts + torch.tensor([5.0, 0, 0])])  # the second is off-screen
    out = R.render(ndc, ndc, faces, uvs, torch.ones(2, 3, 2, 2), ambient_light(2), 8)
    assert out.mask[0].sum() == 16 and out.mask[1].sum() == 0


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError):
        R.Renderer(torch.tensor([[0, 1, 2]]), torch.zeros(3, 2), backend="opengl")


def test_backends_agree_on_mask_and_image():
    pytest.importorskip("pytorch3d", reason="the optional pytorch3d backend is not installed")
    verts, faces, uvs = face_like_mesh(31)
    cam, ndc = project(verts, yaw=0.5, pitch=0.2)
    albedo = torch.rand(1, 3, 32, 32)
    light = ambient_light(1, 0.6)
    light[0, 1] = 0.4 / SH_CONST[1]
    ours = R.Renderer(faces, uvs).render(cam, ndc, albedo, light, 64)
    theirs = R.Renderer(faces, uvs, backend="pytorch3d").render(cam, ndc, albedo, light, 64)
    assert (ours.mask != theirs.mask).float().mean() < 1e-3
    same = (ours.fragments.face_index == theirs.fragments.face_index) & (ours.mask[:, 0] > 0)
    assert same.float().sum() > 0.99 * ours.mask.sum()
    assert (ours.image - theirs.image).abs()[same[:, None].expand(-1, 3, -1, -1)].max() < 1e-4
    assert (ours.fragments.bary - theirs.fragments.bary)[same].abs().max() < 1e-2


def test_render_a_side_lit_face_to_png(tmp_path):
    from PIL import Image

    verts, faces, uvs = face_like_mesh()
    cam, ndc = project(verts, yaw=0.35, pitch=0.1)
    checker = ((torch.arange(64)[:, None] // 8 + torch.arange(64) // 8) % 2).float()
    albedo = torch.stack([0.85 - 0.1 * checker, 0.65 - 0.1 * checker, 0.55 + 0 * checker])[None]
    light = ambient_light(1, 0.45)
    light[0, 1] = 0.6 / SH_CONST[1]  # from the viewer's right
    light[0, 2] = 0.2 / SH_CONST[2]  # and a little from above
    out = R.render(cam, ndc, faces, uvs, albedo, light, 256, torch.full((1, 3, 256, 256), 0.1))
    pixels = (out.image[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(pixels).save(tmp_path / "side_light.png")
    face = out.mask[0, 0] > 0
    columns = torch.arange(256).expand(256, 256)
    centre = columns[face].float().mean()
    lit, dark = out.image[0, 0][face & (columns > centre)], out.image[0, 0][face & (columns < centre)]
    assert lit.mean() > 1.5 * dark.mean()
    assert Image.open(tmp_path / "side_light.png").size == (256, 256)


# ------------------------------------------------------------------------------------- benchmark


def _time_ms(fn, repeats: int = 40) -> str:
    """Median (and min) wall time of ``fn`` after a warm-up, in ms."""
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - start))
    return f"{statistics.median(times):.2f} ({min(times):.2f})"


def _benchmark_size(renderer: R.Renderer, cam, ndc, albedo, light, size: int) -> dict[str, str]:
    leaves = [t.clone().requires_grad_(True) for t in (cam, ndc, albedo, light)]

    def step():
        renderer.render(*leaves, size).image.square().mean().backward()

    out = renderer.render(cam, ndc, albedo, light, size)
    return {
        "rasterize": _time_ms(lambda: renderer.rasterize(ndc, size)),
        "forward": _time_ms(lambda: renderer.render(cam, ndc, albedo, light, size)),
        "forward+backward": _time_ms(step),
        "shade (cached)": _time_ms(lambda: renderer.shade(out, albedo, light)),
    }


def benchmark(verts, faces, uvs, backend: str = "torch", sizes=(128, 256, 512), texture: int = 256) -> None:
    """Print median (min) ms of rasterize, forward, forward+backward and cached re-shade of one face."""
    cam, ndc = project(verts, yaw=0.35, pitch=0.1, scale=1.2 / float(verts[:, 1].max() - verts[:, 1].min()))
    renderer = R.Renderer(faces, uvs, backend=backend)
    albedo, light = torch.rand(1, 3, texture, texture), ambient_light(1)
    print(f"{backend}: {len(verts)} vertices, {len(faces)} triangles, {torch.get_num_threads()} threads")
    for size in sizes:
        rows = _benchmark_size(renderer, cam, ndc, albedo, light, size)
        print(f"  {size}: " + ", ".join(f"{k} {v}" for k, v in rows.items()), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        torch.set_num_threads(int(sys.argv[1]))
    benchmark(*face_like_mesh())
    try:
        from engine.facemodel import FaceModel

        model = FaceModel.load()
        benchmark(model.mean, model.faces, model.uvs)
    except (ImportError, FileNotFoundError) as error:
        print(f"face model: skipped ({error})")
    if R.pytorch3d_available():
        benchmark(*face_like_mesh(), backend="pytorch3d", sizes=(128,))

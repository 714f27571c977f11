import math

import torch

from engine.camera import euler_to_matrix, matrix_to_euler, ndc_to_pixels, pixels_to_ndc, project, to_camera


def test_rotation_is_orthonormal_and_inverts():
    angles = torch.tensor([[0.1, -0.4, 0.2], [-0.3, 0.6, -0.1]])
    rot = euler_to_matrix(angles)
    assert torch.allclose(rot @ rot.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-6)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(2), atol=1e-6)
    assert torch.allclose(matrix_to_euler(rot), angles, atol=1e-5)


def test_positive_yaw_turns_the_nose_to_the_viewers_right():
    nose = torch.tensor([[[0.0, 0.0, 1.0]]])
    cam = to_camera(nose, torch.tensor([[0.0, math.radians(30), 0.0]]))
    assert cam[0, 0, 0] > 0.4


def test_projection_flips_y_and_scales():
    cam = torch.tensor([[[1.0, 2.0, 3.0]]])
    ndc = project(cam, torch.tensor([[0.1]]), torch.tensor([[0.2, -0.1]]))
    assert torch.allclose(ndc, torch.tensor([[[0.3, -0.3, 0.3]]]))


def test_pixel_ndc_round_trip_and_centres():
    px = torch.tensor([[0.0, 0.0], [127.0, 63.5]])
    assert torch.allclose(ndc_to_pixels(pixels_to_ndc(px, 128), 128), px)
    assert torch.allclose(pixels_to_ndc(torch.tensor([-0.5]), 128), torch.tensor([-1.0]))

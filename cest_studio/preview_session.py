"""The preview thread's side of editing: the controls' state as engine edits, and one
engine.reconstruct.editing.FaceEditor per face turning each state into a PreviewFrame. No Qt; the
engine is imported inside the functions.
"""

from __future__ import annotations

from cest_studio.values import EditState, FaceResult, PreviewFrame, SecondFace


def to_edits(state: EditState, second: SecondFace | None, keep_pose: bool = True):
    """The controls' values as engine.reconstruct.editing.Edits (the tensors of the second face included)."""
    from engine.lighting import LightSettings
    from engine.reconstruct.editing import Edits

    if state.light_mode == "settings":
        light = LightSettings(
            state.azimuth, state.elevation, state.intensity, state.ambient, tuple(state.color)
        )
    elif state.light_mode == "other" and second is not None:
        light = second.light_tensor
    else:
        light = None
    return Edits(
        light=light,
        other_albedo=second.albedo if second is not None else None,
        blend=state.blend if second is not None else 0.0,
        rotation=state.pose if keep_pose else None,
        expression=state.expression if keep_pose else None,  # a sequence keeps each frame's own
        view=state.view,
        composite=state.composite,
    )


class PreviewSession:
    """The face being edited on the preview thread: one engine.reconstruct.editing.FaceEditor per face."""

    def __init__(self, size: int = 256):
        self.size = size
        self._editor = None
        self._face_key = None

    def frame(
        self, face: FaceResult, second: SecondFace | None, state: EditState, requested_at: float
    ) -> PreviewFrame:
        from engine.reconstruct.editing import FaceEditor
        from engine.reconstruct.reconstructor import image_tensor

        new_face = face.key != self._face_key
        if new_face:
            self._editor = FaceEditor(
                face.model, face.renderer, face.params, image_tensor(face.crop), size=face.crop.shape[0]
            )
            self._face_key = face.key
        edited = self._editor.frame(to_edits(state, second))
        model = face.model
        return PreviewFrame(
            face_key=face.key,
            image=edited.image,
            texture=edited.texture,
            vertices=edited.vertices,
            faces=model.faces.cpu().numpy() if new_face else None,
            uvs=model.uvs.cpu().numpy() if new_face else None,
            pose_changed=edited.pose_changed or new_face,
            new_face=new_face,
            seconds=edited.seconds,
            requested_at=requested_at,
            state=state,
        )

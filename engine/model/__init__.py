"""The model: the four CEST estimators, the conditional chain (image -> FaceParams), the landmark fit."""

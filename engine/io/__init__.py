"""Every file format once: images, video (PyAV), meshes and glTF, annotations, atomic writes, output folders."""

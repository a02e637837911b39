"""2D object detection family: PicoDetLite, a small anchor-free detector trained on the lite shapes set."""

"""Inference on a trained student, without Lightning: predict (videos or cached clips → decisions and
segments), stream (live windows), export (ONNX and a deployment folder)."""

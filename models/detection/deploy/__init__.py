"""Deployment scripts: Paddle Inference, post-training quantization, paddle2onnx + onnxruntime."""

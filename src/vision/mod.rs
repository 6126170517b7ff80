//! Models as data (manifest, hashes), ONNX Runtime sessions, face detection, alignment, perceived attributes and embeddings.

"""absl command-line trainers and tools; see README.md."""

import os

# TensorFlow's C++ INFO/WARNING lines drown the progress display; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

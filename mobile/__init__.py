"""TFLite / LiteRT export of yoto_tf models with the loss weights as a live input.

* ``python -m mobile.convert``: .keras -> .tflite variants (float32, float16,
  dynamic_int8, selective int8, naive full_int8), parity gate, JSON sidecar, GPU
  delegate coverage (convert.py the CLI; style_transfer.py and compression.py the two
  targets; pipeline.py, export.py, quantization.py, parity.py,
  metadata.py, gpu_delegate.py).
* ``python -m mobile.benchmark``: latency and size of a .tflite.
* ``python -m mobile.example_app``: the app-side steps with ai_edge_litert (sliders ->
  loss_weights -> run by signature name), as in android/README.md.
* ``python -m mobile.web_demo``: the same steps in a web page with LiteRT.js (WebAssembly,
  pinned in web/package-lock.json; the page's template is web/).
"""

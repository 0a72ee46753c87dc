"""Safe model artifacts: XGBoost UBJSON or skops files, with sha256 recorded in ``model.json``.

A model directory holds exactly two files:

- ``model.ubj`` (XGBoost, written by ``XGBClassifier.save_model``) or ``model.skops``
  (scikit-learn, written by ``skops.io.dumps``); never a pickle.
- ``model.json``: trainer, parameters, seed, feature spec, file name, format and the sha256 of
  the model file.

:func:`load_model` verifies the sha256 before it parses anything, refuses pickle files, and
loads skops files only when every type in them is on refit's fixed allowlist.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from refit.errors import IntegrityError
from refit.training.features import FeatureSpec
from refit.training.trainers import TrainedModel, get_trainer

__all__ = [
    "FORMAT_SKOPS",
    "FORMAT_XGBOOST",
    "METADATA_FILE",
    "SKOPS_TRUSTED_TYPES",
    "ModelArtifact",
    "load_model",
    "read_metadata",
    "save_model",
    "sha256_bytes",
]

METADATA_FILE = "model.json"
FORMAT_XGBOOST = "xgboost-ubjson"
FORMAT_SKOPS = "skops"
_FILE_FOR_FORMAT = {FORMAT_XGBOOST: "model.ubj", FORMAT_SKOPS: "model.skops"}
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".pck", ".sav", ".dill", ".cloudpickle")
_ZIP_MAGIC = b"PK\x03\x04"
_METADATA_VERSION = 1

#: The only non-builtin types a skops file written by refit's trainers may contain. Anything
#: else is refused before loading. Extend this list together with the trainer registry.
SKOPS_TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "sklearn.pipeline.Pipeline",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
)

# skops node loaders that rebuild plain data (numpy arrays via np.load(allow_pickle=False),
# dtypes, builtin containers); their numpy/builtins classes need no allowlist entry.
_DATA_LOADERS = {"NdArrayNode", "DTypeNode", "JsonNode", "DictNode", "ListNode", "TupleNode"}


@dataclass(frozen=True)
class ModelArtifact:
    """A saved model directory.

    Attributes:
        directory: The model directory.
        file: Name of the model file inside ``directory`` (``model.ubj`` or ``model.skops``).
        sha256: sha256 of the model file's bytes.
        format: ``"xgboost-ubjson"`` or ``"skops"``.
        trainer: Trainer name.
    """

    directory: str
    file: str
    sha256: str
    format: str
    trainer: str

    @property
    def path(self) -> str:
        """Full path of the model file."""
        return str(Path(self.directory) / self.file)

    def to_dict(self) -> dict[str, str]:
        """Return a JSON-ready dictionary."""
        return {
            "directory": self.directory,
            "file": self.file,
            "sha256": self.sha256,
            "format": self.format,
            "trainer": self.trainer,
        }


def sha256_bytes(data: bytes) -> str:
    """Return the hex sha256 of some bytes."""
    return hashlib.sha256(data).hexdigest()


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:  # pragma: no cover - all are installed with refit
        return None


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _xgboost_bytes(estimator: Any) -> bytes:
    # XGBClassifier.save_model picks UBJSON from the suffix and keeps the sklearn wrapper's
    # attributes (n_classes, objective) in the file.
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "model.ubj"
        estimator.save_model(target)
        return target.read_bytes()


def save_model(model: TrainedModel, directory: str | os.PathLike[str]) -> ModelArtifact:
    """Write a trained model to a directory in a safe format.

    Args:
        model: The trained model.
        directory: Local directory; created if needed. Existing model files are replaced.

    Returns:
        The :class:`ModelArtifact` describing what was written.

    Raises:
        TrainingError: If the model's trainer is unknown.
        IntegrityError: If the estimator cannot be written in the trainer's safe format.
    """
    fmt = get_trainer(model.trainer).format
    if fmt == FORMAT_XGBOOST:
        data = _xgboost_bytes(model.estimator)
    elif fmt == FORMAT_SKOPS:
        import skops.io as sio

        data = sio.dumps(model.estimator)
        _check_skops_types(data, "model.skops")
    else:  # pragma: no cover - guarded by the trainer registry
        raise IntegrityError(f"trainer {model.trainer!r} has unsupported model format {fmt!r}")
    file_name = _FILE_FOR_FORMAT[fmt]
    digest = sha256_bytes(data)
    out = Path(directory)
    _write_atomic(out / file_name, data)
    metadata = {
        "metadata_version": _METADATA_VERSION,
        "trainer": model.trainer,
        "params": model.params,
        "seed": model.seed,
        "feature_spec": model.spec.to_dict(),
        "file": file_name,
        "format": fmt,
        "sha256": digest,
        "size_bytes": len(data),
        "libraries": {
            name: _package_version(name) for name in ("refit", "scikit-learn", "xgboost", "skops")
        },
    }
    _write_atomic(
        out / METADATA_FILE, (json.dumps(metadata, indent=2, sort_keys=True) + "\n").encode()
    )
    return ModelArtifact(
        directory=str(out), file=file_name, sha256=digest, format=fmt, trainer=model.trainer
    )


def read_metadata(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check the ``model.json`` of a model directory.

    Args:
        directory: The model directory.

    Returns:
        The metadata dictionary.

    Raises:
        IntegrityError: If ``model.json`` is missing, unreadable or incomplete, or names a
            pickle file, a path outside the directory or an unknown format.
    """
    root = Path(directory)
    meta_path = root / METADATA_FILE
    if not meta_path.is_file():
        pickles = sorted(p.name for p in root.glob("*") if p.suffix.lower() in _PICKLE_SUFFIXES)
        detail = f"; found pickle file(s) {pickles}, which refit never loads" if pickles else ""
        raise IntegrityError(f"model directory {str(root)!r} has no {METADATA_FILE}{detail}")
    try:
        metadata = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"{meta_path} is not readable JSON: {exc}") from exc
    if not isinstance(metadata, dict):
        raise IntegrityError(f"{meta_path} must hold a JSON object")
    missing = [
        k for k in ("trainer", "feature_spec", "file", "format", "sha256") if k not in metadata
    ]
    if missing:
        raise IntegrityError(f"{meta_path} lacks field(s) {missing}")
    file_name = str(metadata["file"])
    if file_name.lower().endswith(_PICKLE_SUFFIXES):
        raise IntegrityError(
            f"model file {file_name!r} in {str(root)!r} is a pickle; refit refuses to load pickles"
        )
    if Path(file_name).name != file_name or file_name in ("", ".", ".."):
        raise IntegrityError(
            f"{meta_path} field 'file' must be a plain file name, got {file_name!r}"
        )
    if metadata["format"] not in _FILE_FOR_FORMAT:
        raise IntegrityError(
            f"{meta_path} field 'format' is {metadata['format']!r}; "
            f"supported formats: {sorted(_FILE_FOR_FORMAT)}"
        )
    return metadata


def _is_pickle(data: bytes) -> bool:
    # Pickle protocols 2-5 start with PROTO (0x80) and the protocol number.
    return len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5


def _skops_schema_types(data: bytes, file_name: str) -> set[str]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise IntegrityError(f"model file {file_name!r} is not a valid skops file: {exc}") from exc
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            module, cls = node.get("__module__"), node.get("__class__")
            if isinstance(module, str) and isinstance(cls, str):
                loader = node.get("__loader__")
                plain = loader in _DATA_LOADERS and module in ("builtins", "numpy")
                if not plain and module != "builtins":
                    found.add(f"{module}.{cls}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return found


def _check_skops_types(data: bytes, file_name: str) -> None:
    import skops.io as sio

    allowed = set(SKOPS_TRUSTED_TYPES)
    try:
        untrusted = set(sio.get_untrusted_types(data=data))
    except Exception as exc:  # skops raises assorted errors on malformed archives
        raise IntegrityError(f"model file {file_name!r} is not a valid skops file: {exc}") from exc
    refused = sorted((untrusted | _skops_schema_types(data, file_name)) - allowed)
    if refused:
        raise IntegrityError(
            f"model file {file_name!r} contains type(s) {refused} outside refit's allowlist "
            f"{list(SKOPS_TRUSTED_TYPES)}; refusing to load it"
        )


def load_model(directory: str | os.PathLike[str]) -> TrainedModel:
    """Load a model directory written by :func:`save_model`.

    The model file's sha256 is checked against ``model.json`` before the file is parsed; pickle
    files are refused; skops files load only with refit's explicit trusted-type allowlist.

    Args:
        directory: The model directory.

    Returns:
        The :class:`TrainedModel`.

    Raises:
        IntegrityError: If metadata is missing or bad, the sha256 does not match, the file is a
            pickle or not in its declared format, or a skops file holds a type outside the
            allowlist.
    """
    root = Path(directory)
    metadata = read_metadata(root)
    file_name = metadata["file"]
    model_path = root / file_name
    try:
        data = model_path.read_bytes()
    except OSError as exc:
        raise IntegrityError(f"model file {str(model_path)!r} cannot be read: {exc}") from exc
    expected = str(metadata["sha256"])
    actual = sha256_bytes(data)
    if actual != expected:
        raise IntegrityError(
            f"model file {str(model_path)!r} sha256 mismatch: expected {expected}, actual {actual}"
        )
    if _is_pickle(data):
        raise IntegrityError(
            f"model file {str(model_path)!r} is a pickle (protocol {data[1]}); "
            "refit refuses pickles"
        )
    fmt = metadata["format"]
    try:
        spec = FeatureSpec.from_dict(metadata["feature_spec"])
    except (ValueError, TypeError, AttributeError) as exc:
        raise IntegrityError(f"{root / METADATA_FILE} has a bad feature_spec: {exc}") from exc
    if fmt == FORMAT_XGBOOST:
        estimator = _load_xgboost(data, str(model_path))
    else:
        estimator = _load_skops(data, str(model_path))
    n_classes = _estimator_n_classes(estimator)
    if n_classes is not None and n_classes != spec.n_classes:
        raise IntegrityError(
            f"model file {str(model_path)!r} predicts {n_classes} classes but model.json lists "
            f"{spec.n_classes} ({spec.classes})"
        )
    return TrainedModel(
        estimator=estimator,
        spec=spec,
        trainer=str(metadata["trainer"]),
        params=dict(metadata.get("params") or {}),
        seed=int(metadata.get("seed", 0)),
    )


def _load_xgboost(data: bytes, path: str) -> Any:
    from xgboost import XGBClassifier
    from xgboost.core import XGBoostError

    if not data.startswith(b"{"):
        raise IntegrityError(f"model file {path!r} is not UBJSON (first byte {data[:1]!r})")
    estimator = XGBClassifier()
    try:
        estimator.load_model(bytearray(data))
    except XGBoostError as exc:
        raise IntegrityError(f"model file {path!r} is not a valid XGBoost model: {exc}") from exc
    estimator.set_params(device="cpu")
    return estimator


def _load_skops(data: bytes, path: str) -> Any:
    import skops.io as sio

    if not data.startswith(_ZIP_MAGIC):
        raise IntegrityError(f"model file {path!r} is not a skops archive (no zip header)")
    _check_skops_types(data, path)
    try:
        return sio.loads(data, trusted=list(SKOPS_TRUSTED_TYPES))
    except Exception as exc:  # skops raises UntrustedTypesFoundException and parse errors
        raise IntegrityError(f"model file {path!r} could not be loaded safely: {exc}") from exc


def _estimator_n_classes(estimator: Any) -> int | None:
    classes = getattr(estimator, "classes_", None)
    if classes is not None:
        return len(classes)
    return getattr(estimator, "n_classes_", None)

"""Safe model artifacts: XGBoost UBJSON or skops files, with sha256 recorded in ``model.json``.

A model directory holds exactly two files:

- ``model.ubj`` (XGBoost, written by ``XGBClassifier.save_model``) or ``model.skops``
  (scikit-learn, written by ``skops.io.dumps``); never a pickle.
- ``model.json``: trainer, task, parameters, seed, feature spec, file name, format, the sha256
  of the model file, the device that trained it, ``resumed_from_round`` (0 for a fresh run),
  the training facts (rounds, validation, wall time) and, when given, the model card.

skops archives are written canonically (entries renamed in schema order, fixed timestamps), so
the same model gives the same bytes and the same sha256.

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

import numpy as np

from refit.errors import IntegrityError
from refit.io.uri import write_file_atomic
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
    "canonical_skops",
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
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.link.Interval",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss._loss.CyHalfMultinomialLoss",
    "sklearn._loss._loss.CyHalfSquaredError",
    # HistGradientBoosting keeps its feature-subsampling generator (state only, no code).
    "numpy.random._generator.Generator",
    "sklearn.preprocessing._label.LabelEncoder",
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


def _xgboost_bytes(estimator: Any) -> bytes:
    # XGBClassifier.save_model picks UBJSON from the suffix and keeps the sklearn wrapper's
    # attributes (n_classes, objective) in the file.
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "model.ubj"
        estimator.save_model(target)
        return target.read_bytes()


def canonical_skops(data: bytes) -> bytes:
    """Rewrite a skops archive so that the same model always gives the same bytes.

    skops names array files and memo ids after Python object ids and stamps entries with the
    current time; both are replaced by their order of first appearance in the schema, and a
    fixed timestamp.

    Args:
        data: A skops archive.

    Returns:
        The canonical archive, which loads to the same estimator.

    Raises:
        IntegrityError: If ``data`` is not a skops archive.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = {info.filename: info for info in archive.infolist()}
            contents = {name: archive.read(name) for name in infos}
    except zipfile.BadZipFile as exc:
        raise IntegrityError(f"skops output is not a zip archive: {exc}") from exc
    if "schema.json" not in contents:
        raise IntegrityError("skops output has no schema.json")
    schema = json.loads(contents["schema.json"])
    ids: dict[int, int] = {}
    files: dict[str, str] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int) and not isinstance(value, bool):
                    out[key] = ids.setdefault(value, len(ids) + 1)
                elif isinstance(value, str) and value in contents and value != "schema.json":
                    suffix = Path(value).suffix
                    out[key] = files.setdefault(value, f"{len(files) + 1:06d}{suffix}")
                else:
                    out[key] = walk(value)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    schema = walk(schema)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        entries = [("schema.json", json.dumps(schema, indent=2).encode())]
        leftovers = sorted(set(contents) - set(files) - {"schema.json"})
        entries += [(new, contents[old]) for old, new in files.items()]
        entries += [(name, contents[name]) for name in leftovers]
        for name, payload in entries:
            original = infos.get(name) or infos[next(k for k, v in files.items() if v == name)]
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = original.compress_type
            info.external_attr = 0o644 << 16
            archive.writestr(info, payload)
    return buffer.getvalue()


def save_model(
    model: TrainedModel,
    directory: str | os.PathLike[str],
    *,
    card: dict[str, Any] | None = None,
) -> ModelArtifact:
    """Write a trained model to a directory in a safe format.

    The model file's bytes depend only on the model: the same data, parameters and seed give
    the same sha256 on the CPU.

    Args:
        model: The trained model.
        directory: Local directory; created if needed. Existing model files are replaced.
        card: Model card (see :func:`refit.training.card.build_model_card`) stored in
            ``model.json`` under ``card``.

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

        data = canonical_skops(sio.dumps(model.estimator))
        _check_skops_types(data, "model.skops")
    else:  # pragma: no cover - guarded by the trainer registry
        raise IntegrityError(f"trainer {model.trainer!r} has unsupported model format {fmt!r}")
    file_name = _FILE_FOR_FORMAT[fmt]
    digest = sha256_bytes(data)
    out = Path(directory)
    write_file_atomic(out / file_name, data)
    metadata = {
        "metadata_version": _METADATA_VERSION,
        "trainer": model.trainer,
        "task": model.spec.task,
        "params": model.params,
        "seed": model.seed,
        "device": model.device,
        "resumed_from_round": int(model.resumed_from_round),
        "training": _jsonable(model.info),
        "feature_spec": model.spec.to_dict(),
        "file": file_name,
        "format": fmt,
        "sha256": digest,
        "size_bytes": len(data),
        "libraries": {
            name: _package_version(name) for name in ("refit", "scikit-learn", "xgboost", "skops")
        },
    }
    if card is not None:
        metadata["card"] = _jsonable(card)
    write_file_atomic(
        out / METADATA_FILE, (json.dumps(metadata, indent=2, sort_keys=True) + "\n").encode()
    )
    return ModelArtifact(
        directory=str(out), file=file_name, sha256=digest, format=fmt, trainer=model.trainer
    )


def _jsonable(value: Any) -> Any:
    """Round-trip through JSON, turning numpy scalars and tuples into plain values."""

    def default(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        return str(obj)

    return json.loads(json.dumps(value, default=default))


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
        estimator = _load_xgboost(data, str(model_path), regression=spec.is_regression)
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
        device=str(metadata.get("device", "cpu")),
        resumed_from_round=int(metadata.get("resumed_from_round", 0)),
        info=dict(metadata.get("training") or {}),
    )


def _load_xgboost(data: bytes, path: str, *, regression: bool = False) -> Any:
    from xgboost import XGBClassifier, XGBRegressor
    from xgboost.core import XGBoostError

    if not data.startswith(b"{"):
        raise IntegrityError(f"model file {path!r} is not UBJSON (first byte {data[:1]!r})")
    estimator = XGBRegressor() if regression else XGBClassifier()
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
    from sklearn.base import is_regressor

    try:
        if is_regressor(estimator):
            return 0
    except Exception:  # an estimator without sklearn tags: judge by its classes
        pass
    classes = getattr(estimator, "classes_", None)
    if classes is not None:
        return len(classes)
    return getattr(estimator, "n_classes_", None)

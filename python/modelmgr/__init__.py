"""modelmgr: a fast, verifying download manager for Hugging Face Hub models.

The API of the Python ``model_manager`` tool it replaces, on modelmgr's C++ core::

    from modelmgr import ensure_models, ModelManager, BadChecksumError

    paths = ensure_models("config/model_manager/models.yaml")   # {id: snapshot folder}
    mm = ModelManager.from_config("models.yaml")
    path = mm.ensure_model("bge-m3", progress=lambda e: print(e["type"], e["path"]))

Files land in the standard Hugging Face cache (shared with huggingface_hub and the ``hf`` CLI), every byte
checked against the Hub's hash. Downloads release the GIL; Ctrl-C raises KeyboardInterrupt and the next call
resumes where the interrupted one stopped.
"""

from ._modelmgr import (
    BadChecksumError,
    ConfigurationError,
    DownloadError,
    MissingModelError,
    ModelManager,
    ModelManagerError,
    ModelsConfig,
    ModelSpec,
    download_model,
    ensure_models,
    get_model_path,
    is_cached,
    pull,
    verify_model,
)

__all__ = [
    "BadChecksumError",
    "ConfigurationError",
    "DownloadError",
    "MissingModelError",
    "ModelManager",
    "ModelManagerError",
    "ModelSpec",
    "ModelsConfig",
    "download_model",
    "ensure_models",
    "get_model_path",
    "is_cached",
    "pull",
    "verify_model",
]

__version__ = "@PROJECT_VERSION@"

"""A trained checkpoint's own settings (``semanticface_config.json``) and how its files are found.

Training writes :class:`CheckpointConfig` beside the weights; the predictor, DPO and ``semanticface eval`` read it
back to prompt and parse the model the way it was trained. This is the only module that knows the file's name and
layout. Reading is strict: only "there is no such file" means a checkpoint has no config (a plain model); a file
that cannot be read or parsed, a Hub that cannot be reached, or a format newer than this code raises
:class:`ConfigError` instead of silently falling back to a default target (which would parse the model's output
against the wrong template).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semanticface.errors import ConfigError, UntrustedTemplateError

if TYPE_CHECKING:
    from semanticface.contract import TargetConfig

CONFIG_FILENAME = "semanticface_config.json"
ADAPTER_CONFIG = "adapter_config.json"
FORMAT_VERSION = 1  # files written before the version field existed read as version 1


def hub_file(repo_id: str, filename: str, *, revision: str | None = None) -> Path | None:
    """One file of a Hub repo (downloaded or from the cache); None only when the repo has no such file.

    An unreachable Hub, an unknown repo or revision, or an invalid id raises :class:`ConfigError` naming them.
    """
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import LocalEntryNotFoundError, RemoteEntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision))
    except RemoteEntryNotFoundError:
        return None
    except LocalEntryNotFoundError as error:  # offline or unreachable, and not in the cache
        cached = try_to_load_from_cache(repo_id, filename, revision=revision)
        if cached is not None and not isinstance(cached, str):
            return None  # the cache remembers that the repo has no such file (huggingface_hub's no-exist marker)
        raise ConfigError(
            f"{repo_id}: cannot fetch {filename} (the Hub cannot be reached and it is not cached: {error}); "
            "if this is a local folder, check the path"
        ) from None
    except Exception as error:  # RepositoryNotFound, RevisionNotFound, HFValidationError, HTTP errors
        raise ConfigError(
            f"{repo_id}: not a local folder, and {filename} cannot be fetched from the Hub "
            f"({type(error).__name__}: {error})"
        ) from None


def is_adapter(id_or_path: str | Path, *, revision: str | None = None) -> bool:
    """Whether a local directory or Hub repo holds a peft adapter rather than a full model."""
    path = Path(id_or_path)
    if path.is_dir():
        return (path / ADAPTER_CONFIG).is_file()
    return hub_file(str(id_or_path), ADAPTER_CONFIG, revision=revision) is not None


def adapter_base_model(source: str, *, revision: str | None = None) -> str:
    """The base model an adapter (local folder or Hub id) was trained on, from its ``adapter_config.json``."""
    path = Path(source)
    file = path / ADAPTER_CONFIG if path.is_dir() else hub_file(source, ADAPTER_CONFIG, revision=revision)
    if file is None:
        raise ConfigError(f"{source}: cannot read {ADAPTER_CONFIG}")
    try:
        base = json.loads(file.read_text()).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError) as error:
        raise ConfigError(f"{file}: not a readable adapter config ({error})") from None
    if not base:
        raise ConfigError(f"{file}: no base_model_name_or_path, so the base model cannot be resolved")
    # A relative base path recorded at training time is relative to where training ran; try beside the adapter too.
    if not Path(base).exists() and path.is_dir() and (path / base).exists():
        return str(path / base)
    return str(base)


def json_safe(value: Any) -> Any:
    """JSON-safe copy of a value (enums, paths, dtypes become strings; NaN and inf become None)."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_safe(v) for v in value]
    if hasattr(value, "value") and isinstance(value.value, (str, int)):  # enums
        return value.value
    return str(value)


@dataclass
class CheckpointConfig:
    """What a trained checkpoint needs to be used as it was trained.

    ``target``: the :class:`~semanticface.contract.TargetConfig` fields; ``min_pixels``/``max_pixels``: the image
    resolution bounds of training (the image token count must match at inference); ``extra``: everything else
    (metrics, lineage of training stages), kept as written.
    """

    target: dict[str, Any] = field(default_factory=dict)
    base_model: str | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    version: int = FORMAT_VERSION

    @classmethod
    def for_target(cls, target_config: TargetConfig, **kwargs: Any) -> CheckpointConfig:
        return cls(target=asdict(target_config), **kwargs)

    # --- file format ----------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        payload = {
            "version": self.version,
            "target": self.target,
            "base_model": self.base_model,
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
            **self.extra,
        }
        return json_safe({k: v for k, v in payload.items() if v is not None})

    @classmethod
    def from_dict(cls, data: Any, *, where: str = CONFIG_FILENAME) -> CheckpointConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("version", FORMAT_VERSION)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ConfigError(f"{where}: version must be a positive integer, got {version!r:.40}")
        if version > FORMAT_VERSION:
            raise ConfigError(
                f"{where}: written by a newer semanticface (format version {version}; this one reads up to "
                f"{FORMAT_VERSION}): upgrade semanticface to use this checkpoint"
            )
        if "target" in data or "target_config" in data:
            target = data.pop("target", data.pop("target_config", None))
        else:  # early files held the target fields at the top level
            from semanticface.contract import TargetConfig

            names = {f.name for f in fields(TargetConfig)}
            target = {k: data.pop(k) for k in list(data) if k in names}
        if not isinstance(target, dict):
            raise ConfigError(f"{where}: the target section must be an object, got {target!r:.80}")
        pixels = {}
        for name in ("min_pixels", "max_pixels"):
            value = data.pop(name, None)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ConfigError(f"{where}: {name} must be a positive integer, got {value!r:.40}")
            pixels[name] = value
        base_model = data.pop("base_model", None)
        if base_model is not None and not isinstance(base_model, str):
            raise ConfigError(f"{where}: base_model must be a string, got {base_model!r:.80}")
        return cls(target=target, base_model=base_model, extra=data, version=FORMAT_VERSION, **pixels)

    def save(self, out_dir: str | Path) -> Path:
        path = Path(out_dir) / CONFIG_FILENAME
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, id_or_path: str | Path, *, revision: str | None = None) -> CheckpointConfig | None:
        """The config of a local checkpoint folder or Hub repo; None only when it has no config file."""
        path = Path(id_or_path)
        found = (
            path / CONFIG_FILENAME if path.is_dir() else hub_file(str(id_or_path), CONFIG_FILENAME, revision=revision)
        )
        if found is None or not found.exists():
            return None
        file: Path = found
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{file}: cannot read the checkpoint config ({error})") from None
        except json.JSONDecodeError as error:
            raise ConfigError(f"{file}: not valid JSON ({error})") from error
        return cls.from_dict(data, where=str(file))

    # --- use ------------------------------------------------------------------------------------------------

    def target_config(self, *, trust_remote_code: bool = False, source: str | Path | None = None) -> TargetConfig:
        """The training ``TargetConfig``.

        A saved ``template_dir`` means the model brings its own prompt templates: they are used only with
        ``trust_remote_code=True`` (otherwise :class:`UntrustedTemplateError`); a relative one is looked up inside
        the local model folder ``source`` first. Templates always render sandboxed (:mod:`semanticface.prompts`).
        """
        from semanticface.contract import TargetConfig

        names = {f.name for f in fields(TargetConfig)}
        values = {k: v for k, v in self.target.items() if k in names}
        template_dir = values.get("template_dir")
        if template_dir is not None:
            where = f"{source}: " if source is not None else ""
            if not isinstance(template_dir, str):
                raise ConfigError(f"{where}{CONFIG_FILENAME}: template_dir must be a string, got {template_dir!r:.80}")
            if not trust_remote_code:
                raise UntrustedTemplateError(
                    f"{where}{CONFIG_FILENAME} names prompt templates of its own (template_dir={template_dir!r}). "
                    "Templates that come with a model are not used unless you trust its author: pass "
                    "trust_remote_code=True (--trust-remote-code on the command line) to use them, or pass your own "
                    "target_config (TargetConfig(template_dir=...)) to use templates of your own."
                )
            if source is not None and Path(source).is_dir() and not Path(template_dir).is_absolute():
                inside = Path(source) / template_dir
                if inside.is_dir():
                    values["template_dir"] = str(inside)
        return TargetConfig(**values)

    def derived(self, stage: str, source: str | Path, **metrics: Any) -> CheckpointConfig:
        """The config of a checkpoint trained from this one (same target), with the stage added to its lineage."""
        extra = dict(self.extra)
        extra["lineage"] = [*extra.get("lineage", []), {"stage": stage, "from": str(source)}]
        extra.update(metrics)
        return CheckpointConfig(self.target, self.base_model, self.min_pixels, self.max_pixels, extra)


def target_config_from(
    saved: dict[str, Any], *, trust_remote_code: bool = False, source: str | Path | None = None
) -> TargetConfig:
    """The training ``TargetConfig`` of a saved config's contents (defaults when it is empty)."""
    return CheckpointConfig.from_dict(saved).target_config(trust_remote_code=trust_remote_code, source=source)


def read_target_config(
    id_or_path: str | Path, *, trust_remote_code: bool = False, revision: str | None = None
) -> TargetConfig:
    """The ``TargetConfig`` a checkpoint was trained with (the default one for a model without a config)."""
    config = CheckpointConfig.load(id_or_path, revision=revision) or CheckpointConfig()
    return config.target_config(trust_remote_code=trust_remote_code, source=id_or_path)

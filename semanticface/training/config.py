"""Script arguments of ``recipes/distill.py`` (parsed with TRL's ``TrlParser`` beside ``SFTConfig``/``ModelConfig``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from semanticface.choices import check_choices
from semanticface.compact import BLOCK_STYLES
from semanticface.contract import TARGET_FORMATS, TargetConfig
from semanticface.errors import ConfigError
from semanticface.schema import Dialect

TINY_MODEL_PREFIX = "tiny:"


@dataclass
class DistillScriptArguments:
    """Data, target and evaluation settings of a distillation run. Every field is a YAML key and a CLI flag."""

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "A dataset saved with save_to_disk (a directory) or a Hub dataset id; rows in the "
            "semanticface layout (images + one column per channel). Ignored with synthetic: true."
        },
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str | None = field(
        default=None,
        metadata={
            "help": "Held-out split for evaluation; when absent, eval_fraction of the training rows is held out."
        },
    )
    eval_fraction: float = field(
        default=0.05, metadata={"help": "Fraction of rows held out for evaluation when there is no test split."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use at most this many training rows (quick runs)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Evaluate on at most this many held-out rows (teacher-forced loss)."}
    )
    synthetic: bool = field(
        default=False,
        metadata={"help": "Render a synthetic dataset on the fly with semanticface.synth instead of loading one."},
    )
    synthetic_samples: int = field(default=256, metadata={"help": "Number of synthetic faces to render (all splits)."})
    synthetic_renderer: str = field(
        default="avatar", metadata={"help": "Renderer of synthetic faces: avatar (built in) or mesh (needs a rig)."}
    )
    synthetic_mesh_dir: str | None = field(
        default=None, metadata={"help": "Rig for synthetic_renderer=mesh: ICT-style OBJ + npz folder, or a .glb."}
    )
    synthetic_source: str = field(
        default="prototype",
        metadata={
            "help": "Expressions of synthetic faces: prototype (whole basic-emotion expressions, no files needed), "
            "llf (real Live Link Face captures: synthetic_recordings), sparse or uniform.",
            "choices": ["prototype", "llf", "sparse", "uniform"],
        },
    )
    synthetic_recordings: list[str] = field(
        default_factory=list,
        metadata={"help": "Live Link Face CSV paths or globs for synthetic_source: llf (whole takes or time blocks "
                  "are held out, as well as identities)."},
    )  # fmt: skip
    synthetic_image_size: int = field(default=112, metadata={"help": "Side in pixels of rendered faces."})
    synthetic_identities: int = field(default=40, metadata={"help": "Distinct face identities (split by identity)."})
    synthetic_seed: int = field(default=0, metadata={"help": "Seed of synthetic expressions, identities and splits."})
    target_format: str = field(
        default="semantic",
        metadata={
            "help": "'semantic': description then coefficients (the paper); 'coefficients': block only.",
            "choices": TARGET_FORMATS,
        },
    )
    decimals: int = field(default=2, metadata={"help": "Decimals of each coefficient in the target."})
    number_token_weight: float = field(
        default=1.0,
        metadata={
            "help": "Loss weight of the coefficient-value tokens (completion tokens holding a digit) relative to the "
            "other completion tokens (the description, keys, punctuation); the loss stays divided by the token "
            "count. 1.0 = plain SFT loss. Above 1 gives a semantic target's numbers a larger share of the gradient "
            "(e.g. the share they have in a coefficients-only target)."
        },
    )
    include_pose: bool = field(default=False, metadata={"help": "Also train the 9 head/eye pose channels."})
    key_dialect: str = field(
        default="arkit",
        metadata={
            "help": "Key spelling in the coefficient block: arkit, llf, mediapipe, suffix.",
            "choices": tuple(d.value for d in Dialect),
        },
    )
    template_dir: str | None = field(
        default=None, metadata={"help": "Directory of Jinja templates overriding the shipped prompts/ ones."}
    )
    block_style: str = field(
        default="json",
        metadata={
            "help": "Coefficient block: 'json' (keyed object) or 'compact' (values in channel order).",
            "choices": BLOCK_STYLES,
        },
    )
    min_pixels: int | None = field(
        default=None, metadata={"help": "Lower bound on the pixels an image is resized to (Qwen-VL processors)."}
    )
    max_pixels: int | None = field(
        default=None,
        metadata={
            "help": "Upper bound on the pixels an image is resized to (Qwen-VL processors); bounds the number "
            "of image tokens, and so memory and step time."
        },
    )
    freeze_vision_tower: bool = field(
        default=True,
        metadata={"help": "Keep the vision tower (and projector) frozen; LoRA targets the language model only."},
    )
    eval_generate_samples: int = field(
        default=16,
        metadata={"help": "Held-out images the eval callback generates for at each evaluation (0 disables it)."},
    )
    eval_max_new_tokens: int | None = field(
        default=None, metadata={"help": "Generation budget of the eval callback; default: longest target + 32."}
    )
    eval_decoding: str = field(
        default="forced",
        metadata={
            "help": "How the eval callback decodes: 'forced' (template-forced, the numbers only) or 'generate'.",
            "choices": ("forced", "generate"),
        },
    )
    eval_numbers: str = field(
        default="median",
        metadata={
            "help": "How the eval callback reads numbers with forced decoding: 'median' (least expected absolute "
            "error) or 'mode' (greedy tokens; the only choice with eval_decoding: generate).",
            "choices": ("median", "mode"),
        },
    )
    tiny_model_seed: int = field(
        default=0,
        metadata={"help": f"Seed of the tiny model built when model_name_or_path is '{TINY_MODEL_PREFIX}ARCH'."},
    )

    def __post_init__(self) -> None:
        if not 0 <= self.eval_fraction < 1:
            raise ConfigError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if not self.number_token_weight > 0:
            raise ConfigError(f"number_token_weight must be > 0, got {self.number_token_weight}")
        if self.eval_generate_samples < 0:
            raise ConfigError(f"eval_generate_samples must be >= 0, got {self.eval_generate_samples}")
        check_choices(self)  # YAML values too (argparse checks flags only), before any model loads
        if self.eval_numbers == "median" and self.eval_decoding != "forced":
            raise ConfigError("eval_numbers: median needs eval_decoding: forced (use eval_numbers: mode)")
        if self.synthetic_source not in ("prototype", "llf", "sparse", "uniform"):
            raise ConfigError(
                f"synthetic_source must be prototype, llf, sparse or uniform, got {self.synthetic_source!r}"
            )
        if self.synthetic and self.synthetic_source == "llf" and not self.synthetic_recordings:
            raise ConfigError("synthetic_source: llf needs synthetic_recordings (Live Link Face CSV paths or globs)")
        if not self.synthetic and not self.dataset_name:
            raise ConfigError("give dataset_name (a saved dataset directory or Hub id) or set synthetic: true")
        self.target_config()  # validate target fields early, before any model is loaded

    def target_config(self) -> TargetConfig:
        """The contract settings of the training target (also saved with the model for inference)."""
        return TargetConfig(
            target_format=self.target_format,
            decimals=self.decimals,
            include_pose=self.include_pose,
            key_dialect=self.key_dialect,
            template_dir=self.template_dir,
            block_style=self.block_style,
        )

"""Preference stage: iterative DPO rounds with TRL, starting from the distilled (SFT) adapter.

    # tiny model, simulated annotator, two rounds on CPU in a few minutes
    accelerate launch recipes/dpo.py --config recipes/configs/dpo_quickstart.yaml

    # real size: people rank candidates in the browser between rounds
    accelerate launch --config_file recipes/accelerate/single_gpu.yaml recipes/dpo.py \
        --config recipes/configs/dpo_qwen3vl_4b_lora.yaml --model_name_or_path ./distill-out --dataset_name ./faces

    # train one round on pairs exported with `semanticface export-prefs`
    accelerate launch recipes/dpo.py --config recipes/configs/dpo_quickstart.yaml --preference_dataset ./prefs

Each round r samples candidates from round r-1's model (round 0 = model_name_or_path), has them ranked (the
simulated annotator, or people via `semanticface annotate`: the script then stops and says what to run; rerun the
same command afterwards), exports preference pairs and trains with DPOTrainer. From an adapter, TRL keeps a frozen
copy of it as the reference (no second model); from a full checkpoint a fresh LoRA adapter is trained and the
reference is the model with the adapter disabled. Every round's model and metrics land in output_dir/round_<r>/.
Every YAML key is also a command-line flag (``--beta 0.05 --num_rounds 3``). The keys are the fields of
DPOScriptArguments, CandidateConfig, SimulatedAnnotatorConfig, ExportConfig, DPOConfig and ModelConfig, each field
declared once; where names would clash the recipe's key differs from the field (semanticface.preferences.rounds):
CandidateConfig's seed / max_new_tokens / batch_size / identity are sampling_seed / sample_max_new_tokens /
sample_batch_size / render_identity, SimulatedAnnotatorConfig's fields are prefixed simulated_ (simulated_noise,
simulated_seed, ...) and ExportConfig's annotators is export_annotators. ``--help`` lists them by group.
"""

from __future__ import annotations

import json
import logging

from accelerate import PartialState
from trl import DPOConfig, ModelConfig

from semanticface.preferences.candidates import CandidateConfig
from semanticface.preferences.export import ExportConfig
from semanticface.preferences.rounds import DPOScriptArguments, parse_dpo_arguments, run_rounds
from semanticface.preferences.simulated import SimulatedAnnotatorConfig
from semanticface.training.launch import distributed_training_args


def main(
    script_args: DPOScriptArguments,
    training_args: DPOConfig,
    model_args: ModelConfig,
    candidate_config: CandidateConfig | None = None,
    simulated_config: SimulatedAnnotatorConfig | None = None,
    export_config: ExportConfig | None = None,
) -> dict:
    training_args = distributed_training_args(training_args)  # N CPU processes -> one gloo DDP group
    if training_args.precompute_ref_log_probs:
        raise SystemExit("precompute_ref_log_probs: true is refused by TRL for vision data")
    # Image tokens must never be cut off: keep max_length None or large enough for image + prompt + completion.
    report = run_rounds(script_args, training_args, model_args, candidate_config, simulated_config, export_config)
    if "waiting_for" in report:
        logging.getLogger("semanticface.dpo").warning("waiting for rankings: %s", report["waiting_for"])
    return report


if __name__ == "__main__":
    script_args, candidate_config, simulated_config, export_config, training_args, model_args = parse_dpo_arguments()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    report = main(script_args, training_args, model_args, candidate_config, simulated_config, export_config)
    if PartialState().is_main_process:
        print(json.dumps(report, indent=2, default=str))

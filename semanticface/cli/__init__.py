"""`semanticface` command line. Subcommands live in their own modules and are imported only when invoked,
so that `semanticface describe` does not pay for importing torch and transformers."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from semanticface.errors import SemanticFaceError

# name -> (module, one-line help). Each module defines add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "describe": (
        "semanticface.cli.describe",
        "print the stage-1 description and training target of a recording frame",
    ),
    "synth": ("semanticface.cli.synth", "render a synthetic dataset of faces with known coefficients"),
    "pseudolabel": ("semanticface.cli.pseudolabel", "label face images with MediaPipe blendshape scores"),
    "predict": ("semanticface.cli.predict", "predict coefficients for images or a video with a trained model"),
    "eval": ("semanticface.cli.evaluate", "score a model against a dataset and baselines, with plots"),
    "annotate": ("semanticface.cli.annotate", "serve the browser app that ranks rendered candidates"),
    "candidates": ("semanticface.cli.candidates", "sample and render candidate predictions for ranking"),
    "export-prefs": ("semanticface.cli.export_prefs", "turn stored rankings into a TRL preference dataset"),
    "merge": ("semanticface.cli.merge", "merge a LoRA adapter into its base model and save it"),
}


def _usage() -> str:
    lines = ["usage: semanticface COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<14}{help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"semanticface: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"semanticface {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        code = int(module.run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the try, not at interpreter exit
        return code
    except SemanticFaceError as error:
        print(f"semanticface {name}: error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `semanticface describe take.csv | head`: the reader left, not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 141


if __name__ == "__main__":
    sys.exit(main())

"""Support for tests, the quickstart and benchmarks: a tiny real-architecture model (:mod:`.tiny_model`) and
random faces / small datasets of rendered faces (:mod:`.faces`). Nothing here is imported by the library at
import time; ``training.setup`` builds the tiny model lazily for ``model_name_or_path: tiny:<arch>``."""

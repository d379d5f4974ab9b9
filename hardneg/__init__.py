"""hardneg: mine hard negatives for ColBERT and dense retrievers.

The public library API: each stage is a function in the module named like its command, with the
signature ``stage(input, out, config, *, force=False, reporter=...) -> Result``::

    from hardneg.inputs import load_input        # raw input -> Dataset
    from hardneg.embed import embed              # Dataset -> embeddings artifact
    from hardneg.index import build_index        # embeddings -> index artifact
    from hardneg.mine import mine                # index -> mining run
    from hardneg.pipeline import run_mine        # raw input or any artifact -> mining run (the one-liner)
    from hardneg.export import export            # mining run -> training files
    from hardneg.train import train              # export -> checkpoint
    from hardneg.evaluate import evaluate        # BEIR split -> metrics
    from hardneg.loop import run_loop            # rounds of mine -> train -> eval
    from hardneg.config import EmbedConfig, IndexConfig, MineConfig, ExportConfig, TrainConfig, EvalConfig, LoopConfig
    from hardneg.errors import HardnegError      # every error a user can fix

Everything else is internal and may change. (`import hardneg` itself imports nothing heavy.)
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]

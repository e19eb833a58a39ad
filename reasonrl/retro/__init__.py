"""Retro-Search (Lu et al., arXiv 2504.04383): revise reasoning traces into shorter correct ones, then distil.

`segment.py` splits traces into thoughts and steps; `search.py` is the revision (value of a rollout, accept
rule, full / partial / early-exit modes, keywords banned for one step); `command.py` is `reasonrl retro-search`.
Imported only by cli.py, benchmarks/retro_search.py and tests/retro/.
"""

"""SWiRL: synthetic multi-step tool-use trajectories, process / outcome filtering and step-wise RL
(Goldie et al., "Synthetic Data Generation & Multi-Step RL for Reasoning & Tool Use", arXiv 2504.04736).

    actions.py       the action grammar: `<search_query>`, `<math_exp>`, `<answer>`; `parse_action`
    search.py        BM25 search over a local corpus (HotpotQA sample paragraphs + a generated knowledge base)
    worlds.py        the toy worlds: 2-hop QA over a generated knowledge base, arithmetic word problems
    episodes.py      the multi-step inference loop, trajectory generation (JSONL, resumable), `decompose`
    judges.py        process (GOOD/BAD) and outcome (YES/NO) judges, programmatic and LLM; the four filters
    reward.py        reward kind `process`: the process judge as a reward plug-in for the RL trainers
    data.py          filtered trajectories -> step-wise SFT pairs and RL states (JSONL)
    evaluate.py      `reasonrl eval --tools`: accuracy, steps used, tool errors

Imported only by cli.py, benchmarks/swirl.py and tests/swirl (and by `reward.kind = "process"` through the
reward registry).
"""

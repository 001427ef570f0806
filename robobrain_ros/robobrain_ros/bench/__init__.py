"""CPU benchmarks of the brain node against a real vLLM server with the tiny model (issue 7).

`python -m robobrain_ros.bench` (or scripts/bench) measures, in one run: the node's overhead over posting the
same request body directly (overhead.py), simultaneous goals against sequential ones (concurrency.py), the
image budget's cost in prompt tokens and time to first token (image_budget.py) and the node's memory
(memory.py); report.py writes docs/BENCHMARKS.md and docs/benchmarks/cpu_results.json. Numbers are printed
and written, never asserted.
"""

"""The numerical gate calibrated on a harmless baseline: how far the serving stack's own alternatives move the numbers.

The default gate (drift 0.25, top-1 agreement 80%) was set on the RoboBrain2.0-7B architecture, where vLLM's eager
mode drifts 0.138 from its compiled mode and keeps 87.2% of the top-1 tokens. On the 32B architecture (64 layers
against 28) the same eager mode drifts 0.247 and keeps 75.1%: rounding differences add up over depth, and the
defaults would fail vLLM against itself (docs/CONSISTENCY.md). A baseline report, the ``--json`` of a known-harmless
candidate against the same reference (vLLM eager against compiled, say), widens the numerical gate by the margins
the defaults keep over the 7B's eager run; it never tightens it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from .report import GateThresholds, Report

DRIFT_ROW = 'overall numerical: logprob drift (abs Δ / spread)'
TOP1_ROW = 'overall numerical: top-1 agreement (%)'
TOKENS_ROW = 'overall numerical: answer tokens compared'
DRIFT_MARGIN = 1.8     # the default 0.25 over the 7B's eager drift 0.138
TOP1_SLACK = 7.0       # [points] the default 80% under the 7B's eager 87.2%


class BaselineError(ValueError):
    """The baseline report cannot calibrate this comparison."""


@dataclass(frozen=True)
class Baseline:
    """The overall numbers of a harmless candidate against the reference."""

    drift: float
    top1_agreement: float    # [%]
    tokens: int              # answer tokens compared: the same reference and samples give the same count
    source: str


def load_baseline(path: Path) -> Baseline:
    try:
        data = json.loads(Path(path).read_text())
        rows = {row['metric']: row for row in data['rows']}
        return Baseline(drift=float(rows[DRIFT_ROW]['candidate']), top1_agreement=float(rows[TOP1_ROW]['candidate']),
                        tokens=int(rows[TOKENS_ROW]['reference']), source=str(path))
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BaselineError(f'{path}: not a consistency report with overall numerical rows (written by --json): '
                            f'{type(exc).__name__}: {exc}') from exc


def calibrated_gate(gate: GateThresholds, baseline: Baseline) -> GateThresholds:
    """``gate`` with its numerical bounds widened to the baseline's numbers plus the default margins."""
    return dataclasses.replace(
        gate, max_drift=max(gate.max_drift, DRIFT_MARGIN * baseline.drift),
        min_top1_agreement=min(gate.min_top1_agreement, baseline.top1_agreement - TOP1_SLACK))


def check_same_reference(report: Report, baseline: Baseline) -> None:
    """A baseline measured against another reference or sample set says nothing about this comparison."""
    tokens = next((row.reference for row in report.rows if row.metric == TOKENS_ROW), None)
    if tokens is None or int(tokens) != baseline.tokens:
        raise BaselineError(f'{baseline.source} compared {baseline.tokens} answer tokens, this run {tokens}: '
                            'it was measured against another reference or sample set')

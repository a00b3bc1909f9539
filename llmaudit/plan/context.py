"""What every part of the plan shares: the store, the window, the options, the GPU price, the stored
capacity sweeps, and the list of assumptions and notes each part adds to."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmaudit.plan.document import Assumption, Figure
from llmaudit.plan.traffic import Window
from llmaudit.store import Store

# The plan's defaults: each one used is listed among the assumptions.
DEFAULTS = {
    "slo_ttft_s": ("latency target: TTFT", 2.0, "s",
                   "the target when neither --slo-ttft nor --slo-e2e is given and no capacity sweep names one"),
    "batch_max_wait_s": ("longest wait of a non-interactive request", 600.0, "s",
                         "a request of a batch, scheduled or background workload may wait this long, a cold start included"),
    "scale_target": ("autoscaling target", 0.8, "share",
                     "scale at 80% of what one replica sustains (queue depth, tokens/s, requests/s) or 80% utilisation"),
    "scale_down_after_min": ("scale-down delay", 5, "min",
                             "a pool scales down after 5 minutes of lower load: the Kubernetes HPA's default scale-down "
                             "stabilization window and KEDA's default cooldownPeriod (300 s)"),
}


@dataclass
class PlanContext:
    store: Store
    window: Window
    slo_ttft_s: float | None
    slo_e2e_s: float | None
    slo_from_user: bool
    headroom: float
    ops_usd: float
    gpu: str
    gpu_hour_usd: float
    gpus_override: bool                   # --accelerator given: price existing servers as this GPU too
    self_host_class: str
    sweeps: list[dict]
    assumptions: list[Assumption] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def assume(self, name: str, value, unit: str | None, kind: str, source: str) -> None:
        """Record an assumed, default, user-stated or catalog figure (once per name)."""
        if not any(a.name == name for a in self.assumptions):
            self.assumptions.append(Assumption(name=name, value=value, unit=unit, kind=kind, source=source))

    def default(self, key: str):
        name, value, unit, why = DEFAULTS[key]
        self.assume(name, value, unit, "default", why)
        return value

    def figure_assumed(self, fig: Figure, name: str) -> Figure:
        """A figure that is an assumption goes into the list too."""
        if fig.source in ("assumed", "default"):
            self.assume(name, fig.value, fig.unit, "assumed" if fig.source == "assumed" else "default", fig.detail)
        return fig

    def sweep_for(self, model: str | None, hosts: list[str] | None = None) -> dict | None:
        """The newest usable capacity sweep of this production model (or of one of these hosts)."""
        for s in self.sweeps:
            if (model and s["production_model"] == model) or (hosts and s["host"] in hosts):
                return s
        return None

    @property
    def interactive_slo_s(self) -> float:
        return self.slo_ttft_s if self.slo_ttft_s is not None else (self.slo_e2e_s if self.slo_e2e_s is not None else 2.0)

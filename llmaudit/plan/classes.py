"""Model classes (model_classes.yaml): open models a team could self-host, with the per-replica throughput
the plan assumes for them when no `replay capacity` measurement exists, each figure with its source."""

from __future__ import annotations

import re
from datetime import date
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmaudit.yamlfile import load_yaml

CLASSES_FILE = Path(__file__).with_name("model_classes.yaml")


class PlanError(Exception):
    """The plan cannot be made as asked (an unknown class or GPU, an empty store); the message says what to change."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Sourced(_Strict):
    value: float = Field(gt=0)
    source: str


class GpuSpec(_Strict):
    bf16_dense_tflops: float = Field(gt=0)
    source: str


class GpuFigures(_Strict):
    gpus_per_replica: int = Field(1, ge=1)
    decode_tokens_per_s: float = Field(gt=0)
    source: str


class ApiEquivalent(_Strict):
    provider: str
    model: str


class ModelClass(_Strict):
    title: str
    parameters_b: float = Field(gt=0)
    matches: list[str] = Field(default_factory=list, description="regexes matched against a model name")
    api_equivalents: list[ApiEquivalent] = Field(default_factory=list)
    cold_start_s: Sourced
    per_gpu: dict[str, GpuFigures] = Field(default_factory=dict)


class ClassesFile(_Strict):
    as_of: date | None = None
    how_to_measure: str | None = None
    prefill_mfu: Sourced
    gpus: dict[str, GpuSpec]
    classes: dict[str, ModelClass]


@dataclass(frozen=True)
class Throughput:
    """What one replica of a class is assumed to do on one GPU type."""

    model_class: str
    gpu: str
    gpus_per_replica: int
    decode_tokens_per_s: float
    prefill_tokens_per_s: float
    decode_source: str
    prefill_source: str

    def seconds_per_request(self, input_tokens: float, output_tokens: float) -> float:
        return input_tokens / self.prefill_tokens_per_s + output_tokens / self.decode_tokens_per_s

    def requests_per_s(self, input_tokens: float, output_tokens: float) -> float | None:
        s = self.seconds_per_request(input_tokens, output_tokens)
        return 1.0 / s if s > 0 else None


@lru_cache(maxsize=1)
def load_classes(path: Path = CLASSES_FILE) -> ClassesFile:
    try:
        doc = load_yaml(path.read_text(encoding="utf-8"))
        return ClassesFile.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PlanError(f"{path}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None


def get_class(name: str) -> tuple[str, ModelClass]:
    classes = load_classes().classes
    for key, cls in classes.items():
        if key.lower() == name.strip().lower():
            return key, cls
    raise PlanError(f"--self-host-model {name!r}: no such model class; known: {', '.join(classes)} "
                    f"(llmaudit/plan/model_classes.yaml)")


def class_for_model(model: str | None) -> str | None:
    """The class a served model belongs to (by the class's name patterns), if any."""
    if not model:
        return None
    for key, cls in load_classes().classes.items():
        if any(re.search(p, model) for p in cls.matches):
            return key
    return None


def throughput(class_name: str, gpu: str) -> Throughput | None:
    """The class's assumed throughput on a catalog GPU; None when the file has no figure for that GPU."""
    doc = load_classes()
    _, cls = get_class(class_name)
    figures = next((f for g, f in cls.per_gpu.items() if g.lower() == gpu.lower()), None)
    spec = next((s for g, s in doc.gpus.items() if g.lower() == gpu.lower()), None)
    if figures is None or spec is None:
        return None
    prefill = doc.prefill_mfu.value * spec.bf16_dense_tflops * 1e12 * figures.gpus_per_replica / (2 * cls.parameters_b * 1e9)
    return Throughput(model_class=class_name, gpu=gpu, gpus_per_replica=figures.gpus_per_replica,
                      decode_tokens_per_s=figures.decode_tokens_per_s, prefill_tokens_per_s=prefill,
                      decode_source=figures.source,
                      prefill_source=(f"derived: {doc.prefill_mfu.value:g} (prefill_mfu: {doc.prefill_mfu.source}) x "
                                      f"{spec.bf16_dense_tflops:g} TFLOPS ({spec.source}) / (2 x {cls.parameters_b:g}B parameters)"))

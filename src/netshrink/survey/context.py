"""What a survey entry can ask for: data, cached training runs, the survey settings,
results shared between entries, and a place for its figures."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from netshrink.data import Dataset, load_dataset, native_input_size
from netshrink.distill import DistillConfig
from netshrink.errors import NetshrinkError
from netshrink.runs.load import resolve_model
from netshrink.runs.train import train_run
from netshrink.survey.registry import Figure
from netshrink.train import TrainConfig

__all__ = ["FULL_EPOCHS", "SurveyConfig", "SurveyContext"]

FULL_EPOCHS = 4  # training epochs of a full survey run (1 with --quick)
T = TypeVar("T")


@dataclass
class SurveyConfig:
    """Settings of one survey run (``netshrink survey`` flags map onto these)."""

    data: str = "mnist5k"
    out: str = "runs/survey"
    quick: bool = False
    seed: int = 0
    epochs: int | None = None  # None: 4 (full) or 1 (quick)
    limit: int | None = None  # images used; None: all (full) or 1200 (quick)
    batch_sizes: tuple[int, ...] = (1, 64)
    latency_repeats: int | None = None  # None: 20 (full) or 5 (quick)
    table1: bool = True  # classic models at ImageNet shape
    onnx: bool = True  # the onnxruntime latency column (each row exported to ONNX)
    only: tuple[str, ...] = ()  # entry keys; empty: all
    seeds: int | None = None  # seeds of the multi-seed rows; None: 3 (full) or 1 (quick)

    def __post_init__(self) -> None:
        self.batch_sizes = tuple(self.batch_sizes)
        self.only = tuple(self.only)
        if self.epochs is not None and self.epochs < 1:
            raise NetshrinkError(f"--epochs must be >= 1, got {self.epochs}")
        if self.limit is not None and self.limit < 50:
            raise NetshrinkError(f"--limit must be >= 50 images, got {self.limit}")
        if not 0 <= self.seed < 2**32:
            raise NetshrinkError(f"--seed must be in [0, 2**32), got {self.seed}")
        if self.seeds is not None and not 1 <= self.seeds <= 100:
            raise NetshrinkError(f"--seeds must be in [1, 100], got {self.seeds}")
        if self.seed + self.seed_count > 2**32:
            raise NetshrinkError(f"--seed {self.seed} leaves no room for {self.seed_count} seeds")

    @property
    def train_epochs(self) -> int:
        return self.epochs or (1 if self.quick else FULL_EPOCHS)

    @property
    def seed_count(self) -> int:
        return self.seeds or (1 if self.quick else 3)

    @property
    def seed_list(self) -> list[int]:
        """The multi-seed rows' seeds: ``seed`` (every row's) first, then the next ones."""
        return [self.seed + k for k in range(self.seed_count)]

    @property
    def image_limit(self) -> int | None:
        return self.limit if self.limit is not None else (1200 if self.quick else None)

    @property
    def repeats(self) -> int:
        return self.latency_repeats or (5 if self.quick else 20)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(train_epochs=self.train_epochs, image_limit=self.image_limit,
                   seed_list=self.seed_list)  # fmt: skip
        return out


@dataclass
class SurveyContext:
    config: SurveyConfig
    progress: bool = True
    figures: list[Figure] = field(default_factory=list)  # in the order entries added them
    # False in the contexts of the further seeds (out: <survey out>/seeds/seed<N>): only
    # their accuracies are kept, so entries skip figures and scans there.
    primary: bool = True
    _trained: dict[str, Any] = field(default_factory=dict)
    _model_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    _datasets: dict[tuple[Any, ...], Dataset] = field(default_factory=dict)
    _memo: dict[str, Any] = field(default_factory=dict)
    _run_dirs: dict[str, Path] = field(default_factory=dict)  # runs shared from another context

    @property
    def out(self) -> Path:
        return Path(self.config.out)

    def train_config(self, **overrides: Any) -> TrainConfig:
        settings: dict[str, Any] = {
            "epochs": self.config.train_epochs,
            # Quick runs see few images: smaller batches give BatchNorm's running
            # statistics enough steps to settle.
            "batch_size": 32 if self.config.quick else 64,
            "optimizer": "adam",
            "lr": 1e-3,
            "seed": self.config.seed,
        }
        settings.update(overrides)
        return TrainConfig(**settings)

    def _dataset_for(self, model_name: str, model_args: dict[str, Any], seed: int) -> Dataset:
        """The survey's data at the model's input size, read once per (size, seed)."""
        _, size = resolve_model(model_name, native_input_size(self.config.data), model_args)
        cache_key = (size, seed)
        if cache_key not in self._datasets:
            self._datasets[cache_key] = load_dataset(
                self.config.data, input_size=size, seed=seed, limit=self.config.image_limit
            )
        return self._datasets[cache_key]

    def dataset(self, model_name: str, model_args: dict[str, Any] | None = None) -> Dataset:
        """The survey's data as :meth:`train` gives it to ``model_name`` (same splits, same
        object), e.g. for retraining or evaluating a compressed copy of a trained model."""
        return self._dataset_for(model_name, model_args or {}, self.config.seed)

    def train(
        self,
        key: str,
        model_name: str,
        model_args: dict[str, Any] | None = None,
        *,
        teachers: Sequence[str] = (),
        distill: DistillConfig | None = None,
        **overrides: Any,
    ) -> tuple[nn.Module, tuple[int, int, int], dict[str, float]]:
        """Train (or reuse the finished run of) a registry model; cached under ``out/runs/key``.

        ``teachers`` (keys of runs trained before) make it a distillation run with
        ``distill``. Every call with the same ``key`` returns the same model object, which
        is another row's model: an entry that changes weights works on a ``copy.deepcopy``.
        """
        if key in self._trained:
            return self._trained[key]
        missing = [k for k in teachers if k not in self._trained]
        if missing:
            raise NetshrinkError(f"survey run {key!r}: teacher {missing[0]!r} is not trained yet")
        train_config = self.train_config(**overrides)
        run = train_run(
            model_name,
            self._dataset_for(model_name, model_args or {}, train_config.seed),
            train_config,
            self.out / "runs" / key,
            model_args=model_args,
            reuse=True,
            limit=self.config.image_limit,
            progress=self.progress,
            teachers=[self._run_dir(k) / "model.pt" for k in teachers],
            distill_config=distill,
        )
        ckpt = run.checkpoint
        status = "reused" if run.reused else f"trained in {ckpt.metrics['train_seconds']:.0f} s"
        print(f"  {key}: test top-1 {ckpt.metrics['test_top1']:.4f} ({status})", flush=True)
        result = (ckpt.build(), ckpt.input_size, ckpt.metrics)
        self._trained[key] = result
        self._model_args[key] = dict(ckpt.model_args)
        return result

    def model_args(self, key: str) -> dict[str, Any]:
        """The resolved registry arguments of trained run ``key`` (``num_classes``,
        ``in_chans``, ``small_input`` ...): ``create(model_name, **args)`` rebuilds it."""
        if key not in self._model_args:
            raise NetshrinkError(f"survey run {key!r} has not been trained in this survey")
        return dict(self._model_args[key])

    def _run_dir(self, key: str) -> Path:
        return self._run_dirs.get(key, self.out / "runs" / key)

    def for_seed(self, seed: int, share: tuple[str, ...] = ()) -> SurveyContext:
        """The context of a further seed: the same settings with ``seed``, its runs and
        files under ``out/seeds/seed<N>`` (reused like the first seed's). The runs named
        in ``share`` (trained here) are this context's too: e.g. one teacher for every
        seed's students."""
        out = str(self.out / "seeds" / f"seed{seed}")
        other = SurveyContext(replace(self.config, seed=seed, out=out), self.progress,
                              primary=False)  # fmt: skip
        for key in share:
            if key not in self._trained:
                raise NetshrinkError(f"survey run {key!r} is shared but not trained yet")
            other._trained[key] = self._trained[key]
            other._model_args[key] = self._model_args[key]
            other._run_dirs[key] = self._run_dir(key)
        return other

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """``compute()`` once per survey run: lets entries share the stages of a pipeline."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def add_figure(self, key: str, title: str, png: bytes, caption: str = "") -> None:
        """Add a PNG to the report (written as ``figures/<key>.png``, shown after the plots)."""
        if any(f.key == key for f in self.figures):
            raise NetshrinkError(f"survey figure {key!r} added twice")
        if self.primary:  # a further seed's figures would repeat the first seed's
            self.figures.append(Figure(key, title, png, caption))

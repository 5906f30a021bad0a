"""The built-in sweep studies and how a sweep turns ``--param`` lists into trials.

- ``squeezenet``: SqueezeNet's design space (Iandola et al. 2016, §5: squeeze ratio,
  pct3x3, base_e, incr_e, freq) and bypass connections (§6, Table 3: none, simple,
  complex), with Kaiming or LSUV-scaled initialisation (``init``; see the model). One
  trial per point of the grid (the Cartesian product of the ``--param`` lists) and seed;
  each trains the network and reports its size and accuracy.
- ``distill``: Hinton et al. 2015, §3 (MNIST). Per seed, a teacher (``mlp2x1200``:
  dropout, inputs jittered by ±2 px) and each student trained alone, then one distilled
  student per point of the grid (``student``, ``temperature``, ``alpha``) from the teacher
  of the same seed.
- ``deep-compression``: whether a recipe holds on any baseline (Han et al. 2016, Tables
  2-3). Per point (``model``, baseline ``epochs``, ``recipe``) and seed, a baseline trained
  with that seed and then compressed with the recipe's own retraining; each row reports the
  compression ratio and the top-1 change over the seeds (mean ± sd and the worst) against
  the paper's aims. By default both LeNets, 10 and 20 epochs, 5 seeds.

Rows of a study's table are :class:`Group` s: one configuration, its trials over the seeds.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from netshrink.data import native_input_size
from netshrink.errors import NetshrinkError
from netshrink.models import create, get_spec
from netshrink.runs.compress import check_recipe
from netshrink.runs.load import resolve_model
from netshrink.runs.recipe import load_recipe
from netshrink.sweep.parallel import Trial, trial_key
from netshrink.train import TrainConfig

__all__ = ["STUDIES", "Group", "Param", "Study", "SweepConfig", "get_study", "parse_params"]

_TRIALS = "netshrink.sweep.trials"
SQUEEZENET_LR = 2e-4  # as the survey: at Adam's 1e-3 SqueezeNet's last ReLU dies (no BN)


@dataclass(frozen=True)
class Param:
    kind: type  # float, int or str
    default: Any
    choices: tuple[str, ...] = ()  # allowed strings; empty: any


@dataclass
class SweepConfig:
    """One sweep (``netshrink sweep`` flags map onto these fields)."""

    study: str
    grid: dict[str, list[Any]] = field(default_factory=dict)  # parameter -> values, in order
    seeds: int | None = None  # None: the study's default
    data: str = "mnist5k"
    epochs: int | None = None  # None: the study's default
    limit: int | None = None
    out: str = "runs/sweep"

    def __post_init__(self) -> None:
        study = get_study(self.study)
        if self.seeds is not None and self.seeds < 1:
            raise NetshrinkError(f"--seeds must be >= 1, got {self.seeds}")
        if self.epochs is not None and self.epochs < 1:
            raise NetshrinkError(f"--epochs must be >= 1, got {self.epochs}")
        if self.epochs is not None and "epochs" in self.grid:
            raise NetshrinkError("--epochs and --param epochs=... both set the epochs: give one")
        for name, values in self.grid.items():
            _check_param(study, name, values)

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds or get_study(self.study).default_seeds))

    @property
    def train_epochs(self) -> int:
        return self.epochs or get_study(self.study).default_epochs

    def points(self) -> list[dict[str, Any]]:
        """The grid's points: the swept parameters' values, in ``--param`` order (then the
        study's default grid for the parameters not given)."""
        grid = {**self.grid}
        for name, values in get_study(self.study).default_grid.items():
            if name not in grid and not (name == "epochs" and self.epochs is not None):
                grid[name] = list(values)
        names = list(grid)
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]

    def value(self, point: dict[str, Any], name: str) -> Any:
        return point.get(name, get_study(self.study).params[name].default)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(seeds=len(self.seed_list), epochs=self.train_epochs)
        defaults = get_study(self.study).default_grid
        out["swept"] = {  # the grid that ran: --param lists, then the study's defaults
            name: list(values) for name, values in {**defaults, **self.grid}.items()
            if name in self.grid or not (name == "epochs" and self.epochs is not None)
        }  # fmt: skip
        return out


@dataclass(frozen=True)
class Group:
    """One row of a study's table: a configuration and its trial keys (one per seed)."""

    label: str
    role: str  # squeezenet: "point"; distill: "teacher", "alone" or "distilled"
    params: dict[str, Any]
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    params: dict[str, Param]
    default_epochs: int
    default_seeds: int
    plan: Callable[[SweepConfig], tuple[list[Trial], list[Group]]]
    default_grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # when not swept


def parse_params(study_name: str, pairs: Sequence[str]) -> dict[str, list[Any]]:
    """``["squeeze_ratio=0.125,0.25", "bypass=none,simple"]`` → typed value lists."""
    study = get_study(study_name)
    grid: dict[str, list[Any]] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise NetshrinkError(f"--param expects NAME=V1,V2,..., got {pair!r}")
        if name in grid:
            raise NetshrinkError(f"sweep parameter {name!r} given twice")
        items = [t.strip() for t in text.split(",") if t.strip()]
        _check_param(study, name, items)
        grid[name] = [_convert(name, study.params[name], t) for t in items]
        if len(set(grid[name])) != len(grid[name]):
            raise NetshrinkError(f"sweep parameter {name!r} repeats a value")
    return grid


def _check_param(study: Study, name: str, values: Sequence[Any]) -> None:
    if name not in study.params:
        raise NetshrinkError(
            f"unknown sweep parameter {name!r} for {study.name} (known: {', '.join(study.params)})"
        )
    if not values:
        raise NetshrinkError(f"sweep parameter {name!r} has an empty value list")


def _convert(name: str, param: Param, text: str) -> Any:
    if param.kind is str:
        if param.choices and text not in param.choices:
            raise NetshrinkError(f"{name} must be one of {', '.join(param.choices)}, got {text!r}")
        return text
    try:
        value = param.kind(text)
    except ValueError:
        raise NetshrinkError(f"{name} expects {param.kind.__name__} values, got {text!r}") from None
    if param.kind is float and value != value:
        raise NetshrinkError(f"{name} expects numbers, got {text!r}")
    return value


def _check_model(name: str, args: dict[str, Any]) -> None:
    with torch.device("meta"):  # catches bad metaparameters before any trial runs
        create(name, **args)


def _train(config: SweepConfig, seed: int, **overrides: Any) -> dict[str, Any]:
    return TrainConfig(epochs=config.train_epochs, seed=seed, **overrides).to_dict()


# --- squeezenet ---------------------------------------------------------------------------

_MODEL_PARAMS = (
    "squeeze_ratio", "pct3x3", "base_e", "incr_e", "freq", "bypass", "init", "bypass_scale",
)  # fmt: skip
_TRAIN_PARAMS = ("lr", "warmup_epochs", "clip_grad_norm")  # the bypass study's remedies


def _plan_squeezenet(config: SweepConfig) -> tuple[list[Trial], list[Group]]:
    trials, groups = [], []
    for point in config.points():
        model = f"squeezenet{config.value(point, 'version')}"
        args = {k: point[k] for k in _MODEL_PARAMS if k in point}
        if args.get("bypass_scale") == 1.0:
            del args["bypass_scale"]  # the default: no bypass needed
        _check_model(model, {**args, "num_classes": 10, "in_chans": 1, "small_input": True})
        schedule = {k: config.value(point, k) for k in _TRAIN_PARAMS}
        _train(config, 0, **schedule)  # bad values (warm-up longer than training): now
        keys = []
        for seed in config.seed_list:
            key = trial_key(point, seed)
            kwargs = {
                "model": model,
                "model_args": args,
                "data": config.data,
                "train": _train(config, seed, **schedule),
                "limit": config.limit,
                "count_dead": True,
            }
            trials.append(Trial(key, f"{_TRIALS}:train_trial", kwargs))
            keys.append(key)
        label = ", ".join(f"{k}={v}" for k, v in point.items()) or model
        groups.append(Group(label, "point", point, tuple(keys)))
    return trials, groups


# --- distill ------------------------------------------------------------------------------

TEACHER = "mlp2x1200"


def _plan_distill(config: SweepConfig) -> tuple[list[Trial], list[Group]]:
    points = config.points()
    students = list(dict.fromkeys(config.value(p, "student") for p in points))
    for student in students:
        get_spec(student)  # unknown names: one line with the nearest suggestion
    common = {"model_args": {}, "data": config.data, "limit": config.limit}
    trials: list[Trial] = []
    teacher_keys = [f"teacher,seed={s}" for s in config.seed_list]
    for key, seed in zip(teacher_keys, config.seed_list, strict=True):
        kwargs = {"model": TEACHER, **common, "train": _train(config, seed, augment=True)}
        trials.append(Trial(key, f"{_TRIALS}:train_trial", kwargs))
    groups = [Group(f"teacher {TEACHER}", "teacher", {"student": TEACHER}, tuple(teacher_keys))]
    for student in students:
        keys = tuple(f"alone,{trial_key({'student': student}, s)}" for s in config.seed_list)
        for key, seed in zip(keys, config.seed_list, strict=True):
            kwargs = {"model": student, **common, "train": _train(config, seed)}
            trials.append(Trial(key, f"{_TRIALS}:train_trial", kwargs))
        groups.append(Group(f"{student} alone", "alone", {"student": student}, keys))
    for point in points:
        full = {name: config.value(point, name) for name in ("student", "temperature", "alpha")}
        keys = []
        for teacher_key, seed in zip(teacher_keys, config.seed_list, strict=True):
            key = f"distilled,{trial_key(full, seed)}"
            kwargs = {
                "model": full["student"],
                **common,
                "train": _train(config, seed),
                "teacher": teacher_key,  # a trial key: trials/<key>/model.pt
                "temperature": full["temperature"],
                "alpha": full["alpha"],
            }
            trials.append(Trial(key, f"{_TRIALS}:distill_trial", kwargs, (teacher_key,)))
            keys.append(key)
        label = f"{full['student']} distilled T={full['temperature']:g} alpha={full['alpha']:g}"
        groups.append(Group(label, "distilled", full, tuple(keys)))
    return trials, groups


# --- deep-compression ----------------------------------------------------------------------

# The papers' figures each shipped recipe is held to on the model it was written for
# (shared/reference/papers.md): top-1 no more than MAX_DROP points below the baseline it
# was compressed from, and at least this compression ratio (Han et al. 2016, Tables 2-3).
# SqueezeNet's recipes have no ratio aim here: the paper's 510x and 363x are against
# AlexNet's fp32 size at 1,000 classes, checked by bench_deep_compression.py section 2.
DC_AIMS: dict[tuple[str, str], float | None] = {  # (model, recipe) -> least ratio
    ("lenet300_100", "lenet300_100"): 40.0,
    ("lenet5", "lenet5"): 39.0,
    ("squeezenet1_0", "squeezenet1_0_table1"): None,
    ("squeezenet1_0", "squeezenet1_0_table1_8bit"): None,
}
MAX_DROP = 0.2


def _plan_deep_compression(config: SweepConfig) -> tuple[list[Trial], list[Group]]:
    trials: list[Trial] = []
    groups: list[Group] = []
    baselines: set[str] = set()
    names: dict[str, str] = {}  # a recipe's name in the trial keys -> the recipe given
    native = native_input_size(config.data)
    for point in config.points():
        model = config.value(point, "model")
        get_spec(model)  # an unknown model: one line with the nearest name
        epochs = point.get("epochs", config.train_epochs)
        if epochs < 1:
            raise NetshrinkError(f"epochs must be >= 1, got {epochs}")
        source = config.value(point, "recipe") or model  # default: the model's shipped recipe
        recipe = load_recipe(source)  # a bad name or file: one line, before anything runs
        args, _ = resolve_model(model, native, {})
        with torch.device("meta"):  # a recipe naming layers the model lacks fails now
            check_recipe(create(model, **{"num_classes": 10, **args}), recipe)
        name = _key_safe(Path(source).stem if source != model else model)
        if names.setdefault(name, source) != source:
            raise NetshrinkError(
                f"recipes {names[name]} and {source} would share the trial name {name!r}: "
                "rename one of the files"
            )
        aimed = (model, source) in DC_AIMS  # a shipped recipe on its model, not a file
        label = f"{model} {epochs} epochs, recipe {source}"
        keys = []
        for seed in config.seed_list:
            base_key = "baseline," + trial_key({"model": model, "epochs": epochs}, seed)
            if base_key not in baselines:
                baselines.add(base_key)
                kwargs = {
                    "model": model,
                    "model_args": {},
                    "data": config.data,
                    "train": TrainConfig(epochs=epochs, seed=seed, **_baseline_lr(model)).to_dict(),
                    "limit": config.limit,
                }
                trials.append(Trial(base_key, f"{_TRIALS}:train_trial", kwargs))
            point_key = trial_key({"model": model, "epochs": epochs, "recipe": name}, seed)
            key = "compressed," + point_key
            kwargs = {
                "baseline": base_key,  # a trial key: trials/<key>/model.pt
                "recipe": recipe.to_dict(),  # the content, so an edited file reruns
                "data": config.data,
                "limit": config.limit,
            }
            trials.append(Trial(key, f"{_TRIALS}:compress_trial", kwargs, (base_key,)))
            keys.append(key)
        params = {"model": model, "epochs": epochs, "recipe": source, "aimed": aimed,
                  "aim_ratio": DC_AIMS.get((model, source))}  # fmt: skip
        groups.append(Group(label, "compressed", params, tuple(keys)))
    return trials, groups


def _baseline_lr(model: str) -> dict[str, float]:
    """Adam's default 1e-3, but SqueezeNet's 2e-4 (at 1e-3 its final ReLU dies)."""
    return {"lr": SQUEEZENET_LR} if get_spec(model).family == "squeezenet" else {}


def _key_safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "_.+-" else "-" for c in text) or "recipe"


def _check_distill_values(grid: dict[str, list[Any]]) -> None:
    from netshrink.distill import DistillConfig

    for t in grid.get("temperature", []):
        DistillConfig(temperature=t)
    for a in grid.get("alpha", []):
        DistillConfig(alpha=a)


STUDIES: dict[str, Study] = {
    "squeezenet": Study(
        "squeezenet",
        "SqueezeNet design space and bypass connections (Iandola et al. 2016, §5-6)",
        {
            "version": Param(str, "1_0", ("1_0", "1_1")),
            "squeeze_ratio": Param(float, 0.125),
            "pct3x3": Param(float, 0.5),
            "base_e": Param(int, 128),
            "incr_e": Param(int, 128),
            "freq": Param(int, 2),
            "bypass": Param(str, "none", ("none", "simple", "complex")),
            "init": Param(str, "kaiming", ("kaiming", "lsuv")),
            "bypass_scale": Param(float, 1.0),  # shortcut re-scaling; 1: the paper
            "lr": Param(float, SQUEEZENET_LR),
            "warmup_epochs": Param(int, 0),
            "clip_grad_norm": Param(float, 0.0),  # 0: no clipping
        },
        default_epochs=6,
        default_seeds=1,
        plan=_plan_squeezenet,
    ),
    "distill": Study(
        "distill",
        "Knowledge distillation on MNIST (Hinton, Vinyals & Dean 2015, §3)",
        {
            "student": Param(str, "mlp2x800"),
            "temperature": Param(float, 20.0),
            "alpha": Param(float, 0.9),
        },
        default_epochs=30,
        default_seeds=3,
        plan=_plan_distill,
    ),
    "deep-compression": Study(
        "deep-compression",
        "Deep Compression on any baseline (Han, Mao & Dally 2016, Tables 2-3)",
        {
            "model": Param(str, "lenet5"),
            "epochs": Param(int, 20),  # the baseline's training epochs
            "recipe": Param(str, ""),  # a shipped recipe's name or a YAML file; "": the model's
        },
        default_epochs=20,
        default_seeds=5,
        plan=_plan_deep_compression,
        default_grid={"model": ("lenet300_100", "lenet5"), "epochs": (10, 20)},
    ),
}


def get_study(name: str) -> Study:
    if name not in STUDIES:
        raise NetshrinkError(f"unknown sweep study {name!r} (known: {', '.join(STUDIES)})")
    return STUDIES[name]


def plan(config: SweepConfig) -> tuple[list[Trial], list[Group]]:
    """The trials of ``config`` (keys unique, trial folders under ``out/trials``) and the
    groups its table reports; bad values fail here, before anything runs."""
    native = native_input_size(config.data)  # a bad data spec: one line, now
    if config.limit is not None and config.limit < 50:
        raise NetshrinkError(f"--limit must be >= 50 images, got {config.limit}")
    if config.study == "distill":
        _check_distill_values(config.grid)
        teacher_size = resolve_model(TEACHER, native, {})[1]
        for point in config.points():
            student = config.value(point, "student")
            size = resolve_model(student, native, {})[1]
            if size != teacher_size:
                raise NetshrinkError(
                    f"student {student} takes {'x'.join(map(str, size))} inputs but the "
                    f"teacher {TEACHER} takes {'x'.join(map(str, teacher_size))}"
                )
    return get_study(config.study).plan(config)

"""Survey rows of knowledge distillation (Hinton, Vinyals & Dean 2015, §3 on MNIST).

The teacher ``mlp2x1200`` (dropout, inputs jittered by ±2 px) is the baseline; each
student (``mlp2x800``, ``mlp2x30``) appears trained alone on the labels and distilled from
the teacher's soft targets. A figure sweeps the temperature (1, 2, 4, 8, 20) for both
students, one seed; ``netshrink sweep distill`` runs the same experiment over seeds.

Fully connected nets need more passes than the survey's convolutional rows: these rows
train for ``MLP_EPOCHS`` (30; the survey's epochs with ``--quick`` or ``--epochs``).
"""

from __future__ import annotations

from netshrink.distill import DistillConfig
from netshrink.survey.context import SurveyContext
from netshrink.survey.registry import Measured, SurveyEntry, register_entry
from netshrink.sweep.results import SweepRow, temperature_plot

__all__ = ["ALPHA", "MLP_EPOCHS", "STUDENTS", "TEMPERATURES"]

MLP_EPOCHS = 30
ALPHA = 0.9
TEMPERATURES = (1.0, 2.0, 4.0, 8.0, 20.0)
# student -> temperature of its survey row: 20 for 800 units (the paper's), 4 for 30
# units (the paper: 30-unit students do best at T = 2.5-4).
STUDENTS = {"mlp2x800": 20.0, "mlp2x30": 4.0}
TEACHER_KEY = "mlp_teacher"


def _epochs(ctx: SurveyContext) -> int:
    config = ctx.config
    return config.epochs or (config.train_epochs if config.quick else MLP_EPOCHS)


def _teacher(ctx: SurveyContext):
    return ctx.train(TEACHER_KEY, "mlp2x1200", epochs=_epochs(ctx), augment=True)


def _alone(ctx: SurveyContext, student: str):
    _teacher(ctx)  # rows are compared with it; train it first
    return ctx.train(f"{student}_alone", student, epochs=_epochs(ctx))


def _distilled(ctx: SurveyContext, student: str, temperature: float):
    _teacher(ctx)
    return ctx.train(
        f"{student}_distilled_T{temperature:g}",
        student,
        teachers=[TEACHER_KEY],
        distill=DistillConfig(temperature=temperature, alpha=ALPHA),
        epochs=_epochs(ctx),
    )


def _temperature_figure(ctx: SurveyContext) -> None:
    single = SweepRow.single
    rows = [single("teacher mlp2x1200", "teacher", {"student": "mlp2x1200"}, _teacher(ctx)[2])]
    for student in STUDENTS:
        params = {"student": student}
        rows.append(single(f"{student} alone", "alone", params, _alone(ctx, student)[2]))
        for t in TEMPERATURES:
            params = {"student": student, "temperature": t, "alpha": ALPHA}
            rows.append(single("", "distilled", params, _distilled(ctx, student, t)[2]))
    ctx.add_figure(
        "distillation_temperature",
        "Distillation: test error against temperature",
        temperature_plot(rows, f"MNIST students distilled from mlp2x1200 (alpha={ALPHA:g})"),
        caption=(
            "Hinton et al. 2015 §3: one seed per point; `netshrink sweep distill` runs the same "
            "experiment over three seeds with mean ± std. Dashed: the student trained alone; "
            "dotted: the teacher."
        ),
    )


def _run_teacher(ctx: SurveyContext) -> Measured:
    model, input_size, metrics = _teacher(ctx)
    notes = "784-1200-1200-10, dropout 0.2 / 0.5, inputs jittered ±2 px: the teacher."
    return Measured(model, input_size, metrics, notes=notes)


def _run_alone(student: str):
    def run(ctx: SurveyContext) -> Measured:
        model, input_size, metrics = _alone(ctx, student)
        return Measured(model, input_size, metrics, notes="Trained on the labels only.")

    return run


def _run_distilled(student: str, temperature: float, figure: bool):
    def run(ctx: SurveyContext) -> Measured:
        model, input_size, metrics = _distilled(ctx, student, temperature)
        if figure and ctx.primary:  # the figure's temperatures: one seed
            _temperature_figure(ctx)
        notes = (
            f"Soft targets of the teacher at T={temperature:g}, alpha={ALPHA:g} "
            f"(the teacher scores {100 * metrics['teacher_test_top1']:.2f}% on the same split)."
        )
        return Measured(model, input_size, metrics, notes=notes)

    return run


register_entry(
    SurveyEntry(
        key=TEACHER_KEY,
        method="MLP 2x1200 teacher (dropout, jitter)",
        approach="architecture",
        targets_speed=False,
        baseline=TEACHER_KEY,
        run=_run_teacher,
        shared_runs=(TEACHER_KEY,),  # one teacher (26 s per seed) for every seed's students
    )
)
for _i, (_student, _temperature) in enumerate(STUDENTS.items()):
    _width = _student.removeprefix("mlp2x")
    register_entry(
        SurveyEntry(
            key=f"{_student}_alone",
            method=f"MLP 2x{_width} alone",
            approach="architecture",
            targets_speed=True,
            baseline=TEACHER_KEY,
            run=_run_alone(_student),
            multi_seed=True,
        )
    )
    register_entry(
        SurveyEntry(
            key=f"{_student}_distilled",
            method=f"MLP 2x{_width} distilled (T={_temperature:g})",
            approach="architecture",
            targets_speed=True,
            baseline=TEACHER_KEY,
            run=_run_distilled(_student, _temperature, figure=_i == len(STUDENTS) - 1),
            multi_seed=True,
        )
    )

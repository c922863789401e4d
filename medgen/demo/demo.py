"""`medgen demo`: every stage end to end on CPU, on procedurally drawn sample products.

sources → synthetic (or diffusers) candidates → a local Label Studio with simulated annotators →
pull, agreement, consensus → export a dataset version → tiny Qwen2.5-VL: SFT, then DPA-GRPO → eval
against the baselines. Every stage is the same library call the CLI makes, and each is idempotent, so
rerunning the demo on the same folder resumes where it stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from medgen.console import console, progress
from medgen.demo.config import DemoConfig
from medgen.errors import MedgenError

if TYPE_CHECKING:
    from medgen.workspace import Workspace

DEMO_VERSION = "v1"


class Demo:
    """Runs the stages in order, timing each; artefacts are collected for the final summary."""

    def __init__(self, config: DemoConfig):
        self.config = config
        self.timings: list[tuple[str, float]] = []
        self.artefacts: dict[str, str] = {}

    @contextmanager
    def stage(self, number: int, title: str) -> Iterator[None]:
        console.rule(f"[bold]{number}/9 {title}")
        start = time.perf_counter()
        yield
        elapsed = time.perf_counter() - start
        self.timings.append((title, elapsed))
        console.print(f"[green]done[/] {title} in {elapsed:.1f}s")

    def run(self) -> dict[str, Any]:
        c = self.config
        if c.backend == "diffusers" and not c.model:
            raise MedgenError(
                "--backend diffusers needs --model (a diffusers inpainting checkpoint id or folder)"
            )
        total_start = time.perf_counter()
        with self.stage(1, "workspace and sample sources"):
            from medgen.workspace import init_workspace

            workspace = init_workspace(c.directory)
            self.add_samples(workspace)
        try:
            with self.stage(2, f"generate candidates ({c.backend})"):
                self.generate(workspace)
            with self.stage(3, "annotate in Label Studio (simulated annotators)"):
                labelled = self.annotate(workspace)
            if not labelled:
                return self.pause(workspace, time.perf_counter() - total_start)
            self.stop_server(workspace)  # nothing after this needs it: its CPU goes to training
            with self.stage(4, f"export dataset {DEMO_VERSION}"):
                export_dir = self.export(workspace)
            with self.stage(5, "tiny vision-language model"):
                model_dir = self.tiny_model(workspace)
            with self.stage(6, "train: chain-of-thought SFT"):
                sft_dir = self.train(workspace, "sft", export_dir, model_dir)
            with self.stage(7, "train: DPA-GRPO"):
                grpo_dir = self.train(workspace, "grpo", export_dir, sft_dir)
            with self.stage(8, "evaluate against baselines"):
                self.evaluate(workspace, export_dir, grpo_dir)
            with self.stage(9, "screen new generations with the trained model"):
                self.screen(workspace, grpo_dir)
        finally:
            self.stop_server(workspace)
            workspace.close()
        total = time.perf_counter() - total_start
        self.summary(total)
        return {"total_s": total, "timings": dict(self.timings), "artefacts": self.artefacts}

    # stages ------------------------------------------------------------------------------------

    def add_samples(self, workspace: Workspace) -> None:
        from medgen.sources.ingest import add_sources
        from medgen.sources.samples import write_samples

        photos = workspace.root / "sample-photos"
        paths = write_samples(photos, self.config.sources, seed=self.config.seed)
        report = add_sources(workspace, paths)
        s = report.summary()
        console.print(
            f"sample photos in {photos}: added {s['added']}, duplicate {s['duplicate']}, rejected {s['rejected']}"
        )
        self.artefacts["workspace"] = str(workspace.root)
        self.artefacts["sample photos"] = str(photos)

    def generate(self, workspace: Workspace) -> None:
        from medgen.generation.generate import generate

        config = self.generation_config(self.config.seed)
        with progress() as bar:
            task = bar.add_task("generating", total=None, unit="images")
            report = generate(
                workspace,
                config,
                on_progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        counts = workspace.counts()
        console.print(
            f"{counts['candidates']} candidates for {counts['sources_complete']} sources "
            f"({report.images_generated} made now, {counts['generation_failures']} failures)"
        )

    def generation_config(self, seed: int) -> Any:  # -> GenerationConfig
        from medgen.generation.config import GenerationConfig

        c = self.config
        values: dict[str, Any] = {"backend": c.backend, "seed": seed}
        if c.backend == "diffusers":
            values.update(model=c.model, device=c.device)
        return GenerationConfig(**values)

    def annotate(self, workspace: Workspace) -> int:
        """Serve, push, simulate, pull, agree; returns how many sources have consensus labels."""
        from annotation.agreement import agreement
        from annotation.client import connect
        from annotation.pull import pull
        from annotation.push import PushConfig, push
        from annotation.server import running_server, serve
        from annotation.simulate import simulate_annotators

        c = self.config
        info = running_server(workspace)  # a paused demo left it up for the annotators
        if info is None:
            with console.status("starting Label Studio (the first start migrates its database, ~30 s)"):
                info = serve(workspace)
        console.print(f"Label Studio at {info.url} (pid {info.pid})")
        self.artefacts["Label Studio"] = info.url
        connection = connect(workspace)
        report = push(
            workspace,
            connection,
            PushConfig(annotators=c.annotators, overlap=c.overlap, gold_rate=c.gold_rate, seed=c.seed),
        )
        imported = ", ".join(f"{name} {n}" for name, n in report.imported.items()) or "nothing new"
        console.print(f"pushed {report.new_sources} new sources (gold {report.gold_sources}): {imported}")
        if report.logins:
            console.print(
                f"Label Studio logins, each seeing only its own queue: "
                f"{', '.join(login.email for login in report.logins)} (passwords in "
                f"{workspace.labelstudio_dir / 'credentials.json'}, mode 0600)",
                highlight=False,
            )
        made = simulate_annotators(workspace, connection, noise=c.noise, seed=c.seed)
        console.print(
            "[yellow]simulated[/] annotators (answers from the synthetic ground truth with noise): "
            + ", ".join(f"{name} {n}" for name, n in made.items())
        )
        pulled = pull(workspace, connection)
        console.print(
            f"pulled annotations: new {pulled.new}, updated {pulled.updated}, unchanged {pulled.unchanged}"
        )
        result = agreement(workspace, connection)
        alphas = ", ".join(f"{k} {v:.2f}" for k, v in result.alpha.items() if v is not None)
        console.print(f"Krippendorff's alpha: {alphas or 'n/a (fewer than two annotators per item yet)'}")
        console.print(
            f"consensus for {result.consensus.resolved} sources, {len(result.consensus.unresolved)} sent to adjudication"
        )
        self.artefacts["agreement report"] = str(result.report_path)
        return result.consensus.resolved

    def pause(self, workspace: Workspace, elapsed: float) -> dict[str, Any]:
        """No consensus yet (candidates without known labels): leave Label Studio up for real annotators."""
        self.config.keep_server = True
        console.print(
            "[yellow]waiting for annotations[/]: simulated annotators answer from known labels, and "
            f"{self.config.backend} candidates have none. Annotate the projects at "
            f"{self.artefacts.get('Label Studio', 'the Label Studio URL')} (log-in in "
            f"{workspace.labelstudio_dir / 'credentials.json'}), then rerun "
            f"`medgen demo {workspace.root}`: it continues from the pull.",
            highlight=False,
        )
        self.summary(elapsed, paused=True)
        return {
            "total_s": elapsed,
            "timings": dict(self.timings),
            "artefacts": self.artefacts,
            "paused": True,
        }

    def export(self, workspace: Workspace) -> Path:
        from medgen.export.config import ExportConfig
        from medgen.export.dataset import export_dataset

        target = workspace.exports_dir / DEMO_VERSION
        if target.is_dir():
            console.print(f"{target} exists: reusing it (versions are immutable)")
        else:
            config = ExportConfig(
                version=DEMO_VERSION,
                labels="consensus",
                train=0.6,
                validation=0.2,
                test=0.2,
                # No flag: the consensus itself says whether simulated annotators' labels were used.
                license="cc-by-4.0",
            )
            report = export_dataset(workspace, config)
            splits = ", ".join(f"{split} {sum(dims.values())}" for split, dims in report.counts.items())
            console.print(
                f"exported {report.num_samples} samples ({splits}); skipped sources: {len(report.skipped)}"
            )
        self.artefacts["dataset"] = str(target)
        self.artefacts["dataset card"] = str(target / "README.md")
        return target

    def tiny_model(self, workspace: Workspace) -> Path:
        from training.tiny import build_tiny_vlm

        model_dir = workspace.root / "models" / "tiny-qwen2.5-vl"
        if not (model_dir / "config.json").is_file():
            build_tiny_vlm(model_dir, seed=self.config.seed)
        console.print(f"random-weight Qwen2.5-VL (hidden 64, 2 layers, 56x56 images) at {model_dir}")
        return model_dir

    def train(
        self, workspace: Workspace, stage: Literal["sft", "grpo"], export_dir: Path, start_from: Path
    ) -> Path:
        """Train the tiny recipe's ``stage`` from ``start_from`` (reused when a finished model is there)."""
        from training.config import load_config
        from training.stages import config_class, train

        steps = self.config.sft_steps if stage == "sft" else self.config.grpo_steps
        overrides = {
            "dataset": str(export_dir),
            "model_name_or_path": str(start_from),
            "output_dir": str(workspace.root / "runs" / "train" / stage),
            "max_steps": steps,
            "save_steps": steps,
            "seed": self.config.seed,
        }
        config = load_config(config_class(stage), "tiny/demo", stage, overrides)
        output = Path(config.output_dir)
        if (output / "model.safetensors").is_file():
            console.print(f"{output} holds a trained model: reusing it")
        else:
            output = train(stage, config)
            console.print(f"{stage} model and its resolved config in {output}")
        self.print_curve(stage, output)
        self.artefacts[f"{stage.upper()} model"] = str(output)
        return output

    def print_curve(self, stage: str, run_dir: Path) -> None:
        """The logged training loss (SFT) or mean reward (GRPO) as a one-line chart."""
        from training.run import logged_curve, sparkline

        key = "loss" if stage == "sft" else "reward"
        curve = logged_curve(run_dir, key)
        if not curve:
            return
        values = [value for _, value in curve]
        log = key == "loss" and min(values) > 0  # a loss falls by orders of magnitude
        chart = sparkline([math.log(v) for v in values] if log else values)
        console.print(
            f"{stage} {key}{' (log scale)' if log else ''}, steps {curve[0][0]}-{curve[-1][0]}: "
            f"{values[0]:.3f} {chart} {values[-1]:.3f}",
            highlight=False,
        )

    def evaluate(self, workspace: Workspace, export_dir: Path, model_dir: Path) -> None:
        from training.evaluation.evaluate import EvalConfig, run_eval
        from training.evaluation.report import markdown, title_of

        output_dir = workspace.root / "eval" / DEMO_VERSION
        config = EvalConfig(
            dataset=str(export_dir),
            split="test",
            model=str(model_dir),
            name=f"tiny-vlm (demo: {self.config.sft_steps} SFT + {self.config.grpo_steps} GRPO steps)",
            baselines=["random", "majority", "human"],
            max_new_tokens=256,  # the reference reasoning is at most ~130 tokens here
            device="cpu",
            output_dir=output_dir,
        )
        results = run_eval(config)
        console.print(markdown(title_of(results), results.models), highlight=False)
        console.print(standing(results.models), highlight=False)
        self.artefacts["evaluation"] = str(output_dir / "results.md")

    def screen(self, workspace: Workspace, model_dir: Path) -> None:
        """New products arrive: generate their candidates in a workspace of their own and screen them."""
        from medgen.generation.generate import generate
        from medgen.screen.screen import ScreenConfig, groups_from_workspace, screen
        from medgen.sources.ingest import add_sources
        from medgen.sources.samples import write_samples
        from medgen.workspace import init_workspace

        c = self.config
        incoming = init_workspace(workspace.root / "new-generations")
        try:
            photos = write_samples(incoming.root / "photos", 2, seed=c.seed + 1000)
            add_sources(incoming, photos)
            generate(incoming, self.generation_config(c.seed + 1000))
            groups = groups_from_workspace(incoming)
        finally:
            incoming.close()
        config = ScreenConfig(
            model=str(model_dir), max_new_tokens=256, device="cpu", output_dir=workspace.root / "screen"
        )
        results, paths = screen(groups, config)
        counts = {v: sum(r.verdict == v for r in results) for v in ("publishable", "reject", "unknown")}
        console.print(
            f"screened {len(results)} new candidates of {len(groups)} products: {counts['publishable']} "
            f"publishable, {counts['reject']} rejected, {counts['unknown']} unknown (a tiny demo model: "
            "read its verdicts as a demonstration of the output, not as judgements)"
        )
        console.print(f"contact sheet: {paths['contact sheet']}", highlight=False)
        self.artefacts["screening contact sheet"] = str(paths["contact sheet"])

    def stop_server(self, workspace: Workspace) -> None:
        from annotation.server import running_server, stop

        if running_server(workspace) is None:
            return
        if self.config.keep_server:
            console.print(
                f"Label Studio keeps running (stop it with: medgen annotate serve --stop -w {workspace.root})"
            )
            return
        stop(workspace)
        console.print("stopped Label Studio")

    def summary(self, total: float, paused: bool = False) -> None:
        from rich.table import Table

        verb = "paused for annotation" if paused else "finished"
        table = Table(title=f"medgen demo {verb} in {total / 60:.1f} min")
        table.add_column("artefact")
        table.add_column("where")
        for name, where in self.artefacts.items():
            table.add_row(name, where)
        console.print(table)
        root = self.artefacts.get("workspace", str(self.config.directory))
        console.print("[bold]next[/]:")
        if paused:
            lines: tuple[str, ...] = (
                f"medgen annotate status -w {root}   # progress of the annotators",
                f"medgen demo {root}   # once annotated: pull, agreement, export, train, eval",
                f"medgen annotate serve --stop -w {root}",
            )
        else:
            lines = (
                f"medgen status -w {root}",
                f"medgen annotate serve -w {root}   # open the projects and annotate for real",
                f"MEDGEN_DEMO={root} jupyter lab notebooks/   # dataset, agreement, evaluation (pip install jupyterlab)",
                f"medgen publish --repo ORG/NAME --version {DEMO_VERSION} --dry-run -w {root}",
            )
        for line in lines:
            console.print(f"  {line}", highlight=False)


def standing(models: list[Any]) -> str:
    """One honest sentence: has the demo's model learnt the format, and does it beat the baselines?"""
    trained, *baselines = models
    cell = trained.scores["dimensions"]  # "Overall (4 dimensions)", the paper's headline
    others = ", ".join(
        f"{m.name} {m.scores['dimensions'].accuracy * 100:.1f}%"
        for m in baselines
        if m.scores["dimensions"].accuracy is not None
    )
    format_rate = "n/a" if cell.format_rate is None else f"{cell.format_rate * 100:.0f}%"
    beats = all(
        (cell.accuracy or 0) > (m.scores["dimensions"].accuracy or 0) for m in baselines if m.kind != "human"
    )
    verdict = (
        "above random and majority on these few questions (the intervals in the table are wide)"
        if beats
        else "it has learnt the answer format, not yet the task: a tiny model, a few minutes of CPU and a "
        "handful of questions"
    )
    verdict += (
        "; whether this training learns the task with more data and steps, against controls, is measured by "
        "benchmarks/learnability.py (result in benchmarks/README.md, 'Learnability')"
    )
    return (
        f"[bold]where the demo model stands[/]: format {format_rate}, {cell.parse_failures} parse failures; "
        f"Overall (4 dimensions) {(cell.accuracy or 0) * 100:.1f}% on {cell.n} questions vs {others}: {verdict}."
    )


def run_demo(config: DemoConfig) -> dict[str, Any]:
    """Run every stage end to end; returns timings and artefact paths."""
    return Demo(config).run()

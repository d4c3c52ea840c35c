"""Run one training phase with Hugging Face Trainer: resumable, keyed, and skipped when already done."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_callback import ProgressCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from xstilts.atomic import write_json_atomic
from xstilts.errors import XstiltsError
from xstilts.training.config import PhaseConfig, RunConfig
from xstilts.training.data import Collator, PhaseDataset, TaskBatchSampler, TaskExamples, batches_for, task_weights
from xstilts.training.model import (
    MultiTaskModel,
    freeze_word_embeddings,
    load_encoder,
    load_head,
    save_head,
    task_model,
)

PHASE_FILE = "phase.json"
LOG_FILE = "log.jsonl"


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest Trainer checkpoint in ``folder`` that was written to the end, or None.

    Trainer writes ``trainer_state.json`` last: a run killed while saving leaves a newer folder without a
    readable one, and resuming from it would fail every later run.
    """
    complete: list[tuple[int, Path]] = []
    for path in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        step = path.name.rsplit("-", 1)[1]
        if not step.isdigit():
            continue
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        complete.append((int(step), path))
    return str(max(complete)[1]) if complete else None


@dataclass
class PhasePlan:
    """A phase resolved against its data and starting point."""

    index: int
    config: PhaseConfig
    parts: list[TaskExamples]
    key: str
    folder: Path
    start: str  # the model folder this phase starts from
    previous: Path | None  # the previous phase's folder (its heads may carry over)
    seed: int  # the phase's settings with the run's defaults filled in
    max_length: int

    @property
    def checkpoint(self) -> Path:
        return self.folder / "checkpoint"

    @property
    def done(self) -> bool:
        record = self.folder / PHASE_FILE
        return record.is_file() and json.loads(record.read_text()).get("key") == self.key


class LossLog(TrainerCallback):
    """Appends every logged training loss to the phase's log.jsonl."""

    def __init__(self, path: Path, phase: str) -> None:
        self.path, self.phase = path, phase

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs and state.is_world_process_zero:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"phase": self.phase, "step": state.global_step, **logs}) + "\n")


class QuietProgress(ProgressCallback):
    """The progress bar without printing every log dictionary under it."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        return


class PhaseTrainer(Trainer):
    """Trainer fed by the phase's single-task batch sampler instead of a random sampler."""

    def __init__(
        self,
        *args,
        batch_sampler: TaskBatchSampler,
        encoder: torch.nn.Module,
        head_learning_rate: float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.batch_sampler = batch_sampler
        self.encoder_parameters = {id(p) for p in encoder.parameters()}
        self.head_learning_rate = head_learning_rate

    def create_optimizer(self):
        """Trainer's optimizer, with the heads (everything outside the shared encoder) at their own learning rate."""
        if self.optimizer is None and self.head_learning_rate is not None:
            decay = set(self.get_decay_parameter_names(self.model))
            groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
            for name, param in self.model.named_parameters():
                if param.requires_grad:
                    groups.setdefault((id(param) not in self.encoder_parameters, name in decay), []).append(param)
            optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, self.model)
            self.optimizer = optimizer_cls(
                [
                    {
                        "params": params,
                        "lr": self.head_learning_rate if head else self.args.learning_rate,
                        "weight_decay": self.args.weight_decay if decays else 0.0,
                    }
                    for (head, decays), params in groups.items()
                ],
                **kwargs,
            )
        return super().create_optimizer()

    def get_train_dataloader(self):
        loader = torch.utils.data.DataLoader(
            self.train_dataset, batch_sampler=self.batch_sampler, collate_fn=self.data_collator, num_workers=0
        )
        return self.accelerator.prepare(loader)


def training_arguments(
    run: RunConfig, phase: PhaseConfig, folder: Path, max_steps: int, seed: int, multi_task: bool
) -> TrainingArguments:
    if run.precision == "fp16" and not torch.cuda.is_available():
        raise XstiltsError("precision fp16 needs a CUDA GPU; use fp32 (or bf16) on a CPU")
    return TrainingArguments(
        output_dir=str(folder / "trainer"),
        max_steps=max_steps,
        learning_rate=phase.learning_rate,
        per_device_train_batch_size=phase.batch_size,
        gradient_accumulation_steps=phase.gradient_accumulation,
        warmup_ratio=phase.warmup_ratio,
        weight_decay=phase.weight_decay,
        seed=seed,
        data_seed=seed,
        logging_steps=1,
        save_strategy="steps",
        save_steps=run.save_steps,
        save_total_limit=1,
        save_safetensors=False,
        report_to=[],
        bf16=run.precision == "bf16",
        fp16=run.precision == "fp16",
        dataloader_num_workers=0,
        ddp_find_unused_parameters=multi_task,
        remove_unused_columns=False,
        disable_tqdm=False,
    )


def phase_models(plan: PhasePlan, run: RunConfig) -> tuple[torch.nn.Module, dict[str, Any], int]:
    """The shared encoder, a head model per task (heads carried over from the previous phase) and frozen count."""
    encoder = load_encoder(plan.start)
    frozen = freeze_word_embeddings(encoder) if run.freeze_embeddings else 0
    set_seed(plan.seed)  # fresh heads start from the phase's seed, not from whatever the process drew before
    models = {part.task.name: task_model(part.task, encoder, run.pooling) for part in plan.parts}
    if plan.previous is not None:
        for name, model in models.items():
            carried = plan.previous / "heads" / f"{name}.safetensors"
            if carried.is_file():
                load_head(model, carried)
    return encoder, models, frozen


def save_phase(plan: PhasePlan, models: dict[str, Any], tokenizer: Any) -> None:
    """The first task's model and the tokenizer as the phase's checkpoint, and every task's head."""
    primary = models[plan.parts[0].task.name]
    if plan.checkpoint.exists():
        shutil.rmtree(plan.checkpoint)
    primary.save_pretrained(plan.checkpoint)
    tokenizer.save_pretrained(plan.checkpoint)
    (plan.folder / "heads").mkdir(exist_ok=True)
    for name, model in models.items():
        save_head(model, plan.folder / "heads" / f"{name}.safetensors")


def run_phase(plan: PhasePlan, run: RunConfig, tokenizer: Any) -> dict[str, Any]:
    """Train the phase (resuming from its last Trainer checkpoint if any) and save checkpoint, heads and record."""
    started = time.time()
    plan.folder.mkdir(parents=True, exist_ok=True)
    encoder, models, frozen = phase_models(plan, run)
    dataset = PhaseDataset(tokenizer, plan.parts, plan.max_length, run.doc_stride)
    sizes = {name: len(r) for name, r in dataset.offsets.items()}
    batches = batches_for(plan.config, sizes)
    weights = task_weights(sizes, plan.config.sampling, plan.config.temperature, plan.config.cap)
    max_steps = -(-batches // plan.config.gradient_accumulation)
    args = training_arguments(run, plan.config, plan.folder, max_steps, plan.seed, multi_task=len(models) > 1)
    trainer = PhaseTrainer(
        model=MultiTaskModel(models),
        args=args,
        train_dataset=dataset,
        data_collator=Collator(tokenizer.pad_token_id, {p.task.name: p.task.kind for p in plan.parts}),
        batch_sampler=TaskBatchSampler(dataset.offsets, plan.config.batch_size, batches, weights, plan.seed),
        encoder=encoder,
        head_learning_rate=plan.config.head_learning_rate,
        callbacks=[LossLog(plan.folder / LOG_FILE, plan.config.label)],
    )
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(QuietProgress)
    resume = last_complete_checkpoint(Path(args.output_dir))
    if resume is None:
        (plan.folder / LOG_FILE).unlink(missing_ok=True)
    output = trainer.train(resume_from_checkpoint=resume)
    save_phase(plan, models, tokenizer)
    record = {
        "key": plan.key,
        "phase": plan.config.label,
        "index": plan.index,
        "start": plan.start,
        "steps": output.global_step,
        "batches": batches,
        "task_weights": weights,
        "task_sizes": sizes,
        "train_loss": output.training_loss,
        "frozen_parameters": frozen,
        "resumed_from": resume,
        "wall_time_s": round(time.time() - started, 1),
        "device": str(trainer.args.device),
        "config": plan.config.model_dump(),
    }
    write_json_atomic(plan.folder / PHASE_FILE, record)
    shutil.rmtree(args.output_dir, ignore_errors=True)
    return record

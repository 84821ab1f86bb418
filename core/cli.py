"""The command-line face of fcn-gui: ``segment``, ``train``, ``eval``, ``export``, ``import``, ``info``.

Nothing here imports Qt. Each subcommand prints one line per error and exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from core import __version__
from core.base.choices import BACKBONES, PRECISION_CHOICES, UNET, VARIANTS
from core.base.errors import FcnGuiError
from core.base.limits import LIMITS, check_overlap

SUBCOMMANDS = ("segment", "train", "eval", "export", "import", "list", "info", "export-model")


class _Parser(argparse.ArgumentParser):
    """argparse with a short usage error: the message and where the options are listed."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n({self.prog} --help lists the options)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = _Parser(
        prog="fcn-gui",
        description="Semantic-segmentation labelling with FCN-32s/16s/8s. No subcommand opens the app.",
    )
    parser.add_argument("--version", action="version", version=f"fcn-gui {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = sub.add_parser("info", help="parameters, GFLOPs and device for a model")
    _model_args(info)
    info.add_argument(
        "--size", type=_limit("size"), default=500, help="square input size for the FLOP count (default 500)"
    )
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.set_defaults(func=cmd_info)

    seg = sub.add_parser("segment", help="write a VOC label PNG for every image")
    seg.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER")
    seg.add_argument("--out", required=True, type=Path, help="output folder")
    _model_args(seg)
    _device_args(seg)
    _precision_arg(seg)
    seg.add_argument(
        "--tile", type=_limit("tile"), help="largest tile side in pixels (default: whole image if it fits)"
    )
    seg.add_argument(
        "--overlap",
        type=_limit("overlap"),
        help="pixels shared by neighbouring tiles (default 64, a quarter of a smaller --tile)",
    )
    seg.add_argument("--recursive", action="store_true", help="include images in subfolders")
    seg.add_argument("--overwrite", action="store_true", help="redo images whose label already exists")
    seg.add_argument("--overlay", action="store_true", help="also write <stem>_overlay.jpg")
    seg.add_argument("--confidence", action="store_true", help="also write <stem>_confidence.png (0-255)")
    seg.add_argument(
        "--max-pixels", type=_limit("max_pixels"), default=None, help="refuse images larger than this"
    )
    seg.set_defaults(func=cmd_segment)

    exp = sub.add_parser("export", help="write a project as a Pascal VOC segmentation dataset")
    exp.add_argument("project", type=Path, help="project folder (or an image folder with a project)")
    exp.add_argument("--out", required=True, type=Path, help="dataset folder (e.g. data/VOCdevkit/VOC2012)")
    exp.add_argument(
        "--val-fraction",
        type=_limit("val_fraction"),
        default=0.2,
        help="share of images for val (default 0.2)",
    )
    exp.add_argument("--seed", type=_limit("seed"), default=0, help="seed of the train/val split (default 0)")
    exp.add_argument("--only-reviewed", action="store_true", help="export reviewed labels only")
    exp.add_argument("--image-format", choices=("jpg", "png"), default="jpg")
    exp.add_argument(
        "--slide-crops",
        type=_limit("tile"),
        default=0,
        metavar="SIZE",
        help="also cut slides into VOC images of SIZE x SIZE where they were painted (default: only "
        "SlideLabels/<id>.tif)",
    )
    exp.add_argument(
        "--format",
        choices=("voc", "masks"),
        default="voc",
        help="voc: Pascal VOC layout; masks: images/, masks/ (class index per pixel, 255 void), classes.txt",
    )
    exp.set_defaults(func=cmd_export)

    imp = sub.add_parser(
        "import", help="turn a VOC dataset, labelme JSON files or index masks into a project (reviewed)"
    )
    imp.add_argument(
        "voc_dir",
        type=Path,
        metavar="FOLDER",
        help="a VOC dataset, a folder of labelme/X-AnyLabeling .json files, or images/ + masks/",
    )
    imp.add_argument("--project", required=True, type=Path, help="new project folder")
    imp.add_argument("--classes", type=Path, help="labelme class file (__ignore__, _background_, ...)")
    imp.set_defaults(func=cmd_import)

    ls = sub.add_parser("list", help="a project's images and their states, as CSV or JSON lines")
    ls.add_argument("project", type=Path, help="project folder (or an image folder with a project)")
    ls.add_argument("--state", choices=("new", "predicted", "edited", "reviewed"), action="append",
                    help="only images in this state (repeat for several)")  # fmt: skip
    ls.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    ls.set_defaults(func=cmd_list)

    tr = sub.add_parser("train", help="fine-tune on a VOC folder or a project's reviewed labels")
    tr.add_argument("data", type=Path, help="VOC-layout folder or project")
    tr.add_argument(
        "--output", required=True, type=Path, help="best checkpoint (.safetensors); FILE.last too"
    )
    tr.add_argument("--variant", default="fcn8s", choices=VARIANTS)
    tr.add_argument("--backbone", default="vgg16", choices=BACKBONES)
    tr.add_argument(
        "--init", help="CHECKPOINT, imagenet, voc (ResNet) or none (default: imagenet; none for unet)"
    )
    tr.add_argument("--download", action="store_true", help="allow downloading pretrained weights")
    tr.add_argument("--classes", type=Path, help="class list file (one name per line)")
    budget = tr.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=_limit("steps"), default=500)
    budget.add_argument("--epochs", type=_limit("epochs"))
    tr.add_argument("--batch-size", type=_limit("batch_size"), default=4)
    tr.add_argument("--crop", type=_limit("crop"), default=320)
    tr.add_argument("--lr", type=_limit("lr"), default=1e-4)
    tr.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    tr.add_argument("--val-fraction", type=_limit("val_fraction"), default=0.2)
    tr.add_argument("--val-every", type=_limit("val_every"), default=100)
    tr.add_argument("--freeze-backbone", action="store_true")
    tr.add_argument("--workers", type=_limit("workers"), default=2, help="data-loading processes")
    tr.add_argument("--resume", action="store_true", help="continue from FILE.last")
    tr.add_argument("--seed", type=_limit("seed"), default=0)
    tr.add_argument(
        "--time-budget",
        type=_limit("time_budget"),
        metavar="SECONDS",
        help="stop after this many seconds (the checkpoints are still written)",
    )
    tr.add_argument(
        "--deterministic",
        action="store_true",
        help="repeatable on CUDA too (no cuDNN autotuning, no TF32, deterministic kernels): slower",
    )
    _device_args(tr)
    _precision_arg(tr)
    tr.set_defaults(func=cmd_train)

    om = sub.add_parser("export-model", help="write a checkpoint as ONNX: uint8 RGB image in, labels out")
    om.add_argument("checkpoint", type=Path, help="fcn-gui .safetensors or torchvision .pth weights")
    om.add_argument("--out", required=True, type=Path, help="the .onnx file to write")
    om.set_defaults(func=cmd_export_model)

    ev = sub.add_parser("eval", help="pixel accuracy, mean accuracy, mean IoU, fw IoU, IoU per class")
    ev.add_argument("data", type=Path, help="VOC-layout folder or project")
    ev.add_argument("--checkpoint", required=True, type=Path)
    ev.add_argument("--split", choices=("val", "train", "all"), default="val")
    ev.add_argument("--val-fraction", type=_limit("val_fraction"), default=0.2)
    ev.add_argument("--seed", type=_limit("seed"), default=0)
    ev.add_argument("--json", action="store_true")
    _device_args(ev)
    _precision_arg(ev)
    ev.set_defaults(func=cmd_eval)
    return parser


def _limit(name: str):
    """The argparse type of a numeric option: its range from ``core.base.limits``."""
    return LIMITS[name].parse


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, help="fcn-gui .safetensors or torchvision .pth weights")
    p.add_argument("--variant", default="fcn8s", choices=VARIANTS)
    p.add_argument("--backbone", default="vgg16", choices=BACKBONES)


def _precision_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default="auto",
        help="auto: half precision on CUDA, bf16 on CPUs where it measures faster (AMX), else fp32",
    )


def _device_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps"
    )


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; return the process exit code: 0, 1 (it failed: files, data, disk,
    network) or 2 (usage: a bad option or value, from argparse)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "segment":
        if args.overlap is None:
            args.overlap = 64 if args.tile is None else min(64, args.tile // 4)
        elif why := check_overlap(args.overlap, args.tile):
            parser.error(why)
    try:
        return int(args.func(args) or 0)
    except FcnGuiError as exc:
        return _fail(args, str(exc))
    except KeyboardInterrupt:
        print(f"fcn-gui {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # the environment: a full disk, permissions, a vanished folder
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(args, f"{where}{exc.strerror or exc}; check free disk space and permissions")
    except MemoryError:
        return _fail(
            args, "out of memory; close other programs or use smaller --tile / --crop / --batch-size"
        )
    except Exception as exc:
        if os.environ.get("FCN_GUI_DEBUG"):
            raise
        return _fail(
            args,
            f"unexpected {type(exc).__name__}: {exc} (a bug: please report it; "
            "FCN_GUI_DEBUG=1 shows the traceback)",
        )


def _fail(args: argparse.Namespace, message: str) -> int:
    print(f"fcn-gui {args.command}: error: {message}", file=sys.stderr)
    return 1


def load_or_build(args: argparse.Namespace, device: Any = "cpu"):
    """The model named by ``--checkpoint``, or an untrained one of ``--variant``/``--backbone``."""
    from core.model.checkpoints import ModelInfo, load_checkpoint, new_model

    if args.checkpoint is not None:
        return load_checkpoint(args.checkpoint, device=device)
    model = new_model(ModelInfo(variant=args.variant, backbone=args.backbone))
    warn(f"no --checkpoint: {model.info.describe()}")
    return model


def warn(message: str) -> None:
    """Print a warning line on stderr."""
    print(f"fcn-gui: warning: {message}", file=sys.stderr)


def run_with_progress(
    gen: Generator,
    *,
    unit: str,
    desc: str,
    disable: bool = False,
    postfix: Callable[[Any], dict] | None = None,
) -> Any:
    """Drive a core progress generator under a tqdm bar; return its result.

    ``postfix(event)`` gives values shown after the bar (the loss, a score). Ctrl+C closes the
    generator first, so its cleanup runs before the interrupt propagates.
    """
    from tqdm import tqdm

    from core.base.progress import drain

    # disable=None: no bar when stderr is not a terminal (logs, pipes), as with most tools
    bar = tqdm(total=0, unit=unit, desc=desc, disable=True if disable else None, dynamic_ncols=True)

    def show(event) -> None:
        if event.total and bar.total != event.total:
            bar.total = event.total
        bar.n = event.done
        if postfix is not None:
            bar.set_postfix(postfix(event), refresh=False)
        elif event.message:
            bar.set_postfix_str(event.message[-40:], refresh=False)
        bar.refresh()

    try:
        return drain(gen, show)
    finally:
        gen.close()
        bar.close()


def cmd_info(args: argparse.Namespace) -> int:
    """``fcn-gui info``: model size and cost."""
    from core.compute.devices import choose_device, describe_device
    from core.model.flops import model_summary

    summary = model_summary(args.variant, args.backbone, size=args.size, checkpoint=args.checkpoint)
    summary["device"] = describe_device(choose_device("auto"))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key:>20}: {value}")
    return 0


def cmd_segment(args: argparse.Namespace) -> int:
    """``fcn-gui segment``: label PNGs for files and folders."""
    from core.compute.devices import choose_device
    from core.compute.distributed import distributed_rank
    from core.inference.predictor import Predictor
    from core.inference.segment import options_from_env, segment_paths
    from core.io.files import output_folder
    from core.io.images import DEFAULT_MAX_PIXELS

    output_folder(args.out)  # before the model loads: a bad --out fails at once
    rank, world, local_rank = distributed_rank()
    device = choose_device(args.device)
    if device.type == "cuda" and device.index is None and world > 1:
        import torch

        device = torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    model = load_or_build(args, device)
    predictor = Predictor(
        model, device=device, tile=args.tile, overlap=args.overlap, precision=args.precision
    )
    del model  # the predictor runs its own copy: FCN-8s held twice was 0.5 GB more at its peak
    options = options_from_env(
        args.out,
        recursive=args.recursive,
        overwrite=args.overwrite,
        overlay=args.overlay,
        confidence=args.confidence,
        max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS,
    )
    gen = segment_paths(predictor, args.inputs, options)
    prefix = f"[rank {rank}/{world}] " if world > 1 else ""
    print(f"{prefix}model on {predictor.device_name}", file=sys.stderr)
    report = run_with_progress(gen, unit="img", desc=f"{prefix}segment", disable=rank != 0)
    for message in predictor.warnings:
        warn(message)
    print(prefix + report.summary(), file=sys.stderr if report.failed else sys.stdout)
    return 0 if report.ok else 1


def cmd_export(args: argparse.Namespace) -> int:
    """``fcn-gui export``: project -> VOC dataset."""
    from core.formats.masks import export_masks
    from core.formats.voc import export_voc

    with open_project(args.project) as project:
        if args.format == "masks":
            count = run_with_progress(export_masks(project, args.out, only_reviewed=args.only_reviewed),
                                      unit="img", desc="export")  # fmt: skip
            print(f"{count} images and index masks written to {args.out}")
            return 0
        gen = export_voc(
            project,
            args.out,
            val_fraction=args.val_fraction,
            seed=args.seed,
            only_reviewed=args.only_reviewed,
            image_format=args.image_format,
            slide_crops=args.slide_crops,
        )
        report = run_with_progress(gen, unit="img", desc="export")
    print(report.summary())
    return 0


def open_project(path: Path):
    """The project at ``path``, with a class removal that a crash cut short finished first."""
    from core.store.project import Project

    project = Project.open_path(path)
    if project.removal_pending is not None:
        print("finishing the class removal that was cut short", file=sys.stderr)
        run_with_progress(project.iter_resume_removal(), unit="img", desc="classes")
    return project


def cmd_list(args: argparse.Namespace) -> int:
    """``fcn-gui list``: every image of a project with its state, a page at a time."""
    import csv
    import dataclasses

    from core.store.project import COLUMNS

    with open_project(args.project) as project:
        states = tuple(args.state) if args.state else None
        writer = csv.writer(sys.stdout) if args.format == "csv" else None
        if writer is not None:
            writer.writerow(COLUMNS)
        last = 0
        while page := project.entries(states, after_row=last, limit=1000):
            for entry in page:
                row = dataclasses.asdict(entry)
                if writer is not None:
                    writer.writerow(["" if row[c] is None else row[c] for c in COLUMNS])
                else:
                    print(json.dumps(row))
            last = page[-1].row
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """``fcn-gui import``: VOC dataset, labelme JSON files or index masks -> project."""
    from core.formats.detect import import_any

    gen = import_any(args.voc_dir, args.project, args.classes)
    report = run_with_progress(gen, unit="img", desc="import")
    project = report.project
    project.close()
    print(f"project {project.root}: {report.summary()}")
    return 1 if report.skipped else 0


def cmd_train(args: argparse.Namespace) -> int:
    """``fcn-gui train``: fine-tune and write the best and last checkpoints."""
    from core.training.datasets import TrainData
    from core.training.trainer import TrainConfig, train

    data = TrainData.from_path(args.data, val_fraction=args.val_fraction, seed=args.seed).with_classes(
        args.classes
    )
    config = TrainConfig(
        output=args.output,
        variant=args.variant,
        backbone=args.backbone,
        init=args.init or ("none" if args.variant == UNET else "imagenet"),
        allow_download=args.download,
        steps=args.steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        crop=args.crop,
        lr=args.lr,
        optimizer=args.optimizer,
        val_every=args.val_every,
        freeze_backbone=args.freeze_backbone,
        workers=args.workers,
        resume=args.resume,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        time_budget_s=args.time_budget,
        deterministic=args.deterministic,
    )
    from core.compute.distributed import distributed_rank

    rank = distributed_rank()[0]
    print(f"training on {len(data.train)} images, validating on {len(data.val)} ({data.description})")
    score = {"val_miou": "-"}  # the latest validation, shown until the next

    def postfix(event) -> dict:
        if event.val_miou is not None:
            score["val_miou"] = f"{event.val_miou:.3f}"
        return {"loss": f"{event.loss:.4f}", **score}

    gen = train(config, data)
    result = run_with_progress(gen, unit="step", desc="train", disable=rank != 0, postfix=postfix)
    if rank == 0:
        best = "n/a (no validation images)" if result.best_miou is None else f"{result.best_miou:.4f}"
        print(f"{result.steps} steps; best validation mIoU {best}; best: {result.best}; last: {result.last}")
    return 0


def cmd_export_model(args: argparse.Namespace) -> int:
    """``fcn-gui export-model``: checkpoint -> ONNX."""
    from core.model.checkpoints import load_checkpoint
    from core.model.onnx_export import export_onnx

    model = load_checkpoint(args.checkpoint)
    path = export_onnx(model, args.out)
    print(f"{path}: ONNX, input 'image' (H x W x 3 uint8 RGB), outputs 'labels' (H x W uint8) and 'logits'")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """``fcn-gui eval``: the FCN metrics of a checkpoint on a data split."""
    from core.compute.devices import choose_device
    from core.model.checkpoints import load_checkpoint
    from core.training.datasets import TrainData
    from core.training.evaluate import confusion, sample_pairs

    data = TrainData.from_path(args.data, val_fraction=args.val_fraction, seed=args.seed)
    samples = {"val": data.val, "train": data.train, "all": data.train + data.val}[args.split]
    if not samples:
        raise FcnGuiError(f"the {args.split} split is empty; use --split all", args.data)
    device = choose_device(args.device)
    model = load_checkpoint(args.checkpoint, num_classes=len(data.classes), device=device)
    pairs = sample_pairs(samples, len(data.classes))
    meter = confusion(model.module, pairs, model.info, device, args.precision)
    scores = meter.scores().as_dict()
    scores["per_class_iou"] = dict(zip([c.name for c in data.classes], scores["per_class_iou"], strict=True))
    scores["images"] = len(samples)
    if args.json:
        print(json.dumps(scores, indent=2))
        return 0
    for key in ("pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou"):
        print(f"{key:>16}: {scores[key]:.4f}")
    for name, iou in scores["per_class_iou"].items():
        print(f"{name:>16}: {'absent' if iou is None else f'{iou:.4f}'}")
    return 0

"""Train or evaluate MobileNetV3 on an ImageNet-layout list dataset (TIPC tutorial Step6 shape), with PACT and AMP."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import random
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))
if str(Path(__file__).resolve().parents[2]) not in sys.path:
    sys.path.insert(1, str(Path(__file__).resolve().parents[2]))  # the repository root, for models.common

from modeling import (  # noqa: E402  (the path insert above makes the sibling modules importable)
    MODELS,
    ModelMeta,
    build_model,
    default_device,
    make_qat,
    read_meta,
    write_meta,
)

from models.common.numerics import pin_numerics  # noqa: E402


def _early_cpu_threads(argv: Sequence[str]) -> int:
    """--cpu-threads, read before paddle is imported (the thread count must be in the environment by then)."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--cpu-threads", type=int, default=1)
    known, _ = early.parse_known_args(argv)
    return max(int(known.cpu_threads), 1)


pin_numerics(_early_cpu_threads(sys.argv[1:]))

import numpy as np  # noqa: E402
import paddle  # noqa: E402
from presets import load_image, preprocess, read_list  # noqa: E402

__all__ = ["ListDataset", "evaluate", "get_args_parser", "main", "train_one_epoch"]

Sample = tuple[np.ndarray, np.ndarray]  # (CHW float32 image, [label] int64)
AmpLevel = Literal["O1", "O2"]


def amp_level(text: str) -> AmpLevel | None:
    value = text.strip()
    if value.lower() in ("", "null", "none", "false", "o0"):
        return None
    if value.upper() == "O1":
        return "O1"
    if value.upper() == "O2":
        return "O2"
    msg = f"expected O1, O2 or null, got {text!r}"
    raise argparse.ArgumentTypeError(msg)


class ListDataset(paddle.io.Dataset[Sample]):
    """A `path label` list, decoded and preprocessed once up front (the lite val+train set is ~9 MB as float32)."""

    def __init__(self, data_path: str | Path, list_name: str, image_size: int) -> None:
        super().__init__()
        items = read_list(data_path, list_name)
        self.labels = np.array([label for _, label in items], dtype=np.int64)
        self.images = np.stack([preprocess(load_image(path), image_size) for path, _ in items])

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.images[index], self.labels[index : index + 1]

    def __len__(self) -> int:
        return len(self.labels)


class SeededBatchSampler(paddle.io.BatchSampler):
    """Batches in a per-epoch permutation from numpy's legacy RandomState(seed + epoch).

    RandomState's stream is frozen across numpy releases, so the batch order (and the trained weights) do not
    depend on the numpy or paddle version's sampler.
    """

    def __init__(self, dataset: ListDataset, batch_size: int, *, seed: int, shuffle: bool) -> None:
        super().__init__(dataset=dataset, batch_size=batch_size)
        self.size, self.batch_size, self.seed, self.shuffle = len(dataset), batch_size, seed, shuffle
        self.epoch = 0

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            order = np.random.RandomState(self.seed + self.epoch).permutation(self.size)
        else:
            order = np.arange(self.size)
        for start in range(0, self.size, self.batch_size):
            yield [int(i) for i in order[start : start + self.batch_size]]

    def __len__(self) -> int:
        return math.ceil(self.size / self.batch_size)


def make_loader(
    dataset: ListDataset, args: argparse.Namespace, *, shuffle: bool
) -> tuple[paddle.io.DataLoader, SeededBatchSampler]:
    sampler = SeededBatchSampler(dataset, args.batch_size, seed=args.seed, shuffle=shuffle)
    return paddle.io.DataLoader(dataset, batch_sampler=sampler, num_workers=args.num_workers), sampler


@dataclasses.dataclass(slots=True)
class AmpState:
    """What --amp_level asked for and what paddle can do on this device."""

    level: AmpLevel | None
    enabled: bool  # paddle's dygraph AMP only acts on GPU/XPU/custom places
    dtype: Literal["float16", "bfloat16", "fp32"]
    scaler: Any

    @property
    def effective(self) -> str:
        return self.dtype if self.enabled else "fp32"


def setup_amp(args: argparse.Namespace, model: paddle.nn.Layer, optimizer: Any) -> tuple[Any, Any, AmpState]:
    """Wire paddle.amp the way the tutorial does; on CPU say plainly that the arithmetic stays fp32.

    Paddle 3.x dygraph AMP (auto_cast, decorate, GradScaler) only acts on GPU, XPU and custom devices: on a CPU
    place auto_cast and GradScaler disable themselves (with a warning each) and decorate leaves the weights fp32.
    So the amp chain on CPU exercises the code path and the flags, and computes exactly what fp32 training does.
    """
    if args.amp_level is None:
        return model, optimizer, AmpState(None, False, "fp32", None)
    on_accelerator = args.device != "cpu"
    if not on_accelerator:
        print(
            f"amp: level={args.amp_level} requested on cpu; paddle dygraph AMP is GPU/XPU only, "
            "so this run computes in fp32 (auto_cast, decorate and GradScaler are skipped)",
            flush=True,
        )
        return model, optimizer, AmpState(args.amp_level, False, "fp32", None)
    scaler = paddle.amp.GradScaler(init_loss_scaling=1024)
    if args.amp_level == "O2":
        model, optimizer = paddle.amp.decorate(
            models=model, optimizers=optimizer, level="O2", dtype="float16", save_dtype="float32"
        )
    print(f"amp: level={args.amp_level} dtype=float16", flush=True)
    return model, optimizer, AmpState(args.amp_level, True, "float16", scaler)


def autocast(amp: AmpState) -> contextlib.AbstractContextManager[Any]:
    if not amp.enabled or amp.level is None or amp.dtype == "fp32":
        return contextlib.nullcontext()
    return paddle.amp.auto_cast(enable=True, level=amp.level, dtype=amp.dtype)


def train_one_epoch(
    model: paddle.nn.Layer,
    criterion: paddle.nn.Layer,
    optimizer: Any,
    scheduler: Any,
    loader: paddle.io.DataLoader,
    epoch: int,
    args: argparse.Namespace,
    amp: AmpState,
) -> float:
    """One pass over the loader; prints `epoch: e/E iter: i/I loss: L lr: R ips: N samples/s` every interval."""
    model.train()
    steps = len(loader)
    window_loss, window_samples, window_start = 0.0, 0, time.perf_counter()
    total_loss, total_samples = 0.0, 0
    for step, (images, labels) in enumerate(loader, start=1):
        with autocast(amp):
            logits = model(images)
        loss = criterion(logits.astype("float32"), labels)
        if amp.scaler is not None:
            scaled = amp.scaler.scale(loss)
            scaled.backward()
            amp.scaler.step(optimizer)
            amp.scaler.update()
        else:
            loss.backward()
            optimizer.step()
        lr = optimizer.get_lr()
        optimizer.clear_grad()
        scheduler.step()
        batch = int(images.shape[0])
        value = float(loss)
        window_loss += value * batch
        window_samples += batch
        total_loss += value * batch
        total_samples += batch
        if step % args.print_freq == 0 or step == steps:
            elapsed = max(time.perf_counter() - window_start, 1e-9)
            print(
                f"epoch: {epoch + 1}/{args.epochs} iter: {step}/{steps} loss: {window_loss / window_samples:.4f} "
                f"lr: {lr:.6f} ips: {window_samples / elapsed:.1f} samples/s",
                flush=True,
            )
            window_loss, window_samples, window_start = 0.0, 0, time.perf_counter()
    return total_loss / max(total_samples, 1)


@paddle.no_grad()
def evaluate(model: paddle.nn.Layer, loader: paddle.io.DataLoader) -> tuple[float, float, int]:
    """Top-1 and top-5 accuracy over the loader."""
    model.eval()
    correct1 = correct5 = seen = 0
    for images, labels in loader:
        logits = model(images).astype("float32").numpy()
        truth = labels.numpy().reshape(-1)
        k = min(5, logits.shape[1])
        # Stable sort on the negated logits: ties resolve to the lower class id, the same on every run.
        top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
        correct1 += int((top[:, 0] == truth).sum())
        correct5 += int((top == truth[:, None]).any(axis=1).sum())
        seen += len(truth)
    return correct1 / max(seen, 1), correct5 / max(seen, 1), seen


def make_optimizer(args: argparse.Namespace, scheduler: Any, model: paddle.nn.Layer) -> Any:
    decay = paddle.regularizer.L2Decay(args.weight_decay)
    if args.optimizer == "momentum":
        return paddle.optimizer.Momentum(
            learning_rate=scheduler, momentum=args.momentum, parameters=model.parameters(), weight_decay=decay
        )
    return paddle.optimizer.Adam(learning_rate=scheduler, parameters=model.parameters(), weight_decay=decay)


def set_bn_momentum(model: paddle.nn.Layer, momentum: float) -> int:
    """Override the running-statistics momentum of every batch-norm layer; returns how many were changed.

    paddle.vision's MobileNetV3 builds its BatchNorm2D with momentum=0.99, which after the ~100 steps of a
    lite schedule leaves the running statistics mostly at their initial values, so eval-mode predictions
    collapse to one class. 0.9 tracks the moving weights within a few dozen steps.
    """
    changed = 0
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.layer.norm._BatchNormBase):
            layer._momentum = momentum
            changed += 1
    return changed


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def load_weights(model: paddle.nn.Layer, path: str) -> None:
    state = paddle.load(path)
    missing, unexpected = model.set_state_dict(state)
    if missing or unexpected:
        msg = f"{path}: weights do not fit the model (missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]})"
        raise SystemExit(msg)


def main(args: argparse.Namespace) -> int:
    paddle.device.set_device(args.device)
    seed_everything(args.seed)
    meta = ModelMeta(
        model=args.model,
        scale=args.scale,
        num_classes=args.num_classes,
        image_size=args.image_size,
        quant="pact" if args.pact_quant else None,
    )
    sidecar = read_meta(args.pretrained) if args.pretrained else None
    if sidecar is not None:
        # Our own weights: rebuild exactly the network they came from.
        meta = dataclasses.replace(
            meta,
            model=sidecar.model,
            scale=sidecar.scale,
            num_classes=sidecar.num_classes,
            image_size=sidecar.image_size,
            quant=sidecar.quant if (args.test_only or sidecar.quant) else meta.quant,
        )
    model = build_model(meta.model, scale=meta.scale, num_classes=meta.num_classes)
    weights_quantized = sidecar is not None and sidecar.quant == "pact"
    set_bn_momentum(model, args.bn_momentum)
    if args.pretrained and not weights_quantized:
        load_weights(model, args.pretrained)  # float weights go in before the quantizers wrap the layers
    if meta.quant == "pact":
        make_qat().quantize(model)
    if args.pretrained and weights_quantized:
        load_weights(model, args.pretrained)

    val_set = ListDataset(args.data_path, args.val_list, meta.image_size)
    val_loader, _ = make_loader(val_set, args, shuffle=False)
    if args.test_only:
        if not args.pretrained:
            print("--test-only needs --pretrained", file=sys.stderr)
            return 2
        top1, top5, seen = evaluate(model, val_loader)
        print(f"eval: top1={top1:.4f} top5={top5:.4f} samples={seen}", flush=True)
        return 0

    train_set = ListDataset(args.data_path, args.train_list, meta.image_size)
    train_loader, train_sampler = make_loader(train_set, args, shuffle=True)
    steps = len(train_loader) * args.epochs
    warmup = min(len(train_loader), max(steps // 10, 1))
    scheduler = paddle.optimizer.lr.LinearWarmup(
        paddle.optimizer.lr.CosineAnnealingDecay(learning_rate=args.lr, T_max=max(steps - warmup, 1)),
        warmup_steps=warmup,
        start_lr=args.lr / 10,
        end_lr=args.lr,
    )
    optimizer = make_optimizer(args, scheduler, model)
    model, optimizer, amp = setup_amp(args, model, optimizer)
    criterion = paddle.nn.CrossEntropyLoss()

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"train: model={meta.model} scale={meta.scale} image_size={meta.image_size} quant={meta.quant} "
        f"amp={amp.level}->{amp.effective} device={args.device} samples={len(train_set)} "
        f"batch_size={args.batch_size} epochs={args.epochs} seed={args.seed}",
        flush=True,
    )
    start = time.perf_counter()
    for epoch in range(args.epochs):
        train_sampler.epoch = epoch
        avg = train_one_epoch(model, criterion, optimizer, scheduler, train_loader, epoch, args, amp)
        print(f"epoch: {epoch + 1}/{args.epochs} done: loss_avg: {avg:.4f}", flush=True)
    train_s = time.perf_counter() - start
    weights = out / "latest.pdparams"
    # paddle.amp.decorate(save_dtype="float32") already hands out fp32 weights; cast anything else to be sure.
    state = {
        k: (v.astype("float32") if v.dtype in (paddle.float16, paddle.bfloat16) else v)
        for k, v in model.state_dict().items()
    }
    paddle.save(state, str(weights))
    write_meta(
        weights,
        dataclasses.replace(
            meta,
            amp_level=amp.level,
            amp_effective=amp.effective,
            epochs=args.epochs,
            seed=args.seed,
            paddle_version=paddle.version.full_version,
        ),
    )
    top1, top5, seen = evaluate(model, val_loader)
    print(f"eval: top1={top1:.4f} top5={top5:.4f} samples={seen}", flush=True)
    print(f"train: done in {train_s:.1f} s, saved {weights}", flush=True)
    return 0


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, add_help=add_help)
    parser.add_argument("--model", default="mobilenet_v3_small", choices=MODELS)
    parser.add_argument("--scale", type=float, default=1.0, help="channel width multiplier")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=64, help="input resolution in pixels (square)")
    parser.add_argument("--device", default=None, choices=("cpu", "gpu"), help="default: gpu when usable, else cpu")
    parser.add_argument("--data-path", default="./lite_data/cls_digits", help="folder with the list files")
    parser.add_argument("--train-list", default="train_list.txt")
    parser.add_argument("--val-list", default="val_list.txt")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--optimizer", default="adam", choices=("adam", "momentum"))
    parser.add_argument("--lr", type=float, default=0.003, help="peak learning rate (linear warm-up, cosine decay)")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (--optimizer momentum)")
    parser.add_argument("--bn-momentum", type=float, default=0.9, help="batch-norm running-statistics momentum")
    parser.add_argument("--weight-decay", type=float, default=4e-5)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument(
        "--cpu-threads", type=int, default=1, help="CPU math threads; 1 keeps results identical on every machine"
    )
    parser.add_argument("--print-freq", type=int, default=5, help="log every N iterations")
    parser.add_argument("--output-dir", default="./output/")
    parser.add_argument("--pretrained", default=None, help="weights to start from (or to evaluate with --test-only)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--test-only", action="store_true", help="evaluate --pretrained on the val list and exit")
    parser.add_argument("--pact_quant", action="store_true", help="PACT quantization-aware training (paddleslim)")
    parser.add_argument(
        "--amp_level",
        type=amp_level,
        default=None,
        help="O1 or O2 (null: off). GPU: float16 auto_cast + GradScaler (+ decorate for O2). CPU: Paddle's "
        "dygraph AMP is GPU/XPU only, so the run says so and computes in fp32",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = get_args_parser().parse_args(argv)
    if args.pretrained in ("", "null", "None"):
        args.pretrained = None
    if args.device is None:
        args.device = default_device()
    if args.epochs < 1 or args.batch_size < 1 or args.print_freq < 1:
        print("--epochs, --batch-size and --print-freq must be positive", file=sys.stderr)
        raise SystemExit(2)
    return args


if __name__ == "__main__":
    raise SystemExit(main(parse_args()))

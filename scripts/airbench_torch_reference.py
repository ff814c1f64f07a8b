"""An independent PyTorch formulation of the speedrun recipe (airbench94, as its paper and README describe it),
the yardstick that `configs/speedrun.py`'s TensorFlow translation is checked against: the same network, data,
augmentation, optimizer and evaluation, written in PyTorch's own terms (conv -> pool -> BatchNorm -> activation,
SGD parameter groups with weight_decay = wd / lr, a state-dict weight average of every float, BatchNorm's
statistics too, as airbench's LookaheadState).

It needs PyTorch, which vizdeconv does not depend on (`pip install torch` into any environment); nothing here
imports vizdeconv. On a 2-core CPU an epoch takes about 5 minutes on two threads (Zen 3), the whole
9.9 epochs under an hour.

  python scripts/airbench_torch_reference.py --data_dir ../shared/cifar10 --epochs 1 --activation relu \
      --normalize image      # the vizdeconv recipe's choices
  python scripts/airbench_torch_reference.py --data_dir ../shared/cifar10 --epochs 1   # airbench's (GELU)

Prints `RESULT ... accuracy=A tta=B` for the whole test split (B: the six-view test-time augmentation).
"""

import argparse
import math
import os
import sys
import tarfile
import time

import numpy as np

FOLDER, TARBALL = "cifar-10-batches-bin", "cifar-10-binary.tar.gz"


def load(data_dir: str, split: str):
    """uint8 images [N, 3, 32, 32] and int64 labels [N] from the official binary tarball."""
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    with tarfile.open(os.path.join(data_dir, TARBALL)) as archive:
        rows = [np.frombuffer(archive.extractfile(f"{FOLDER}/{n}").read(), np.uint8).reshape(-1, 3073) for n in names]
    raw = np.concatenate(rows)
    return raw[:, 1:].reshape(-1, 3, 32, 32), raw[:, 0].astype(np.int64)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", required=True, help=f"the folder holding {TARBALL}")
    parser.add_argument("--epochs", type=float, default=9.9)
    parser.add_argument("--activation", choices=("gelu", "relu"), default="gelu")
    parser.add_argument("--normalize", choices=("dataset", "image"), default="dataset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval_every", type=int, default=100, help="test accuracy every N steps (0: at the end only)")
    args = parser.parse_args(argv)
    try:
        import torch
        import torch.nn.functional as F
        from torch import nn
    except ImportError:
        print("error: this yardstick needs PyTorch (pip install torch); vizdeconv itself does not", file=sys.stderr)
        return 2
    if not os.path.isfile(os.path.join(args.data_dir, TARBALL)):
        print(f"error: {args.data_dir} has no {TARBALL}", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    def normalized(images):
        x = torch.tensor(images, dtype=torch.float32) / 255
        if args.normalize == "dataset":
            mean = torch.tensor((0.4914, 0.4822, 0.4465)).view(1, 3, 1, 1)  # airbench's published constants
            return (x - mean) / torch.tensor((0.2470, 0.2435, 0.2616)).view(1, 3, 1, 1)
        floor = torch.tensor(1 / math.sqrt(x[0].numel()))  # tf.image.per_image_standardization's
        return (x - x.mean((1, 2, 3), keepdim=True)) / torch.maximum(
            x.std((1, 2, 3), unbiased=False, keepdim=True), floor
        )

    train_images, train_labels = load(args.data_dir, "train")
    test_images, test_labels = load(args.data_dir, "test")
    x_train, y_train = normalized(train_images), torch.tensor(train_labels)
    x_test, y_test = normalized(test_images), torch.tensor(test_labels)
    activation = nn.GELU if args.activation == "gelu" else nn.ReLU

    def conv(inputs, outputs, size=3, padding="same", bias=False):
        layer = nn.Conv2d(inputs, outputs, size, padding=padding, bias=bias)
        if bias:
            layer.bias.data.zero_()
        nn.init.dirac_(layer.weight.data[: layer.weight.size(1)])  # identity-partial start
        return layer

    def norm(channels):
        layer = nn.BatchNorm2d(channels, eps=1e-12, momentum=0.4)  # PyTorch's momentum: the new batch's share
        layer.weight.requires_grad = False
        return layer

    def block(inputs, outputs):
        return [conv(inputs, outputs), nn.MaxPool2d(2), norm(outputs), activation(),
                conv(outputs, outputs), norm(outputs), activation()]  # fmt: skip

    net = nn.Sequential(conv(3, 24, 2, padding=0, bias=True), activation(), *block(24, 64), *block(64, 256),
                        *block(256, 256), nn.MaxPool2d(3), nn.Flatten(), nn.Linear(256, 10, bias=False))  # fmt: skip
    # patch whitening: eigenvectors of the 2x2 patches' second moment over sqrt(eigenvalue + 5e-4), both signs
    patches = x_train[:5000].unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12)
    eigenvalues, eigenvectors = torch.linalg.eigh(patches.T @ patches / len(patches))
    filters = (eigenvectors.T / torch.sqrt(eigenvalues + 5e-4)[:, None]).reshape(12, 3, 2, 2)
    net[0].weight.data[:] = torch.cat([filters, -filters])
    net[0].weight.requires_grad = False
    # channels-last runs PyTorch's CPU convolutions ~1.2x faster here (2-core Zen 3); the arithmetic is the same
    net = net.to(memory_format=torch.channels_last)
    x_train = x_train.contiguous(memory_format=torch.channels_last)

    batch, momentum = 1024, 0.85
    per_kilostep = 1024 * (1 + 1 / (1 - momentum))
    rate, decay = 11.5 / per_kilostep, 0.0153 * batch / per_kilostep
    norm_ids = {id(p) for m in net if isinstance(m, nn.BatchNorm2d) for p in m.parameters() if p.requires_grad}
    offsets = [p for p in net.parameters() if id(p) in norm_ids]
    others = [p for p in net.parameters() if p.requires_grad and id(p) not in norm_ids]
    optimizer = torch.optim.SGD([dict(params=offsets, lr=64 * rate, weight_decay=decay / (64 * rate)),
                                 dict(params=others, lr=rate, weight_decay=decay / rate)],
                                momentum=momentum, nesterov=True)  # fmt: skip
    per_epoch = len(x_train) // batch
    total = math.ceil(per_epoch * args.epochs)
    peak = int(0.23 * total)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: float(np.interp(i, [0, peak, total], [0.2, 1, 0.07]))
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.2, reduction="none")
    average = {k: v.clone() for k, v in net.state_dict().items()}
    step, start = 0, time.time()

    def copy_average():
        for kept, value in zip(average.values(), net.state_dict().values()):
            if value.dtype == torch.float32:
                value.copy_(kept)

    # the alternating flip: a random first side per image, all mirrored every other epoch; translation by 2
    sides = torch.rand(len(x_train)) < 0.5
    padded = F.pad(torch.where(sides.view(-1, 1, 1, 1), x_train.flip(-1), x_train), (2,) * 4, mode="reflect")
    for epoch in range(math.ceil(args.epochs)):
        net[0].bias.requires_grad = epoch < 3  # the whitening bias trains for 3 epochs
        shifts = torch.randint(0, 5, (len(x_train), 2))
        images = torch.empty_like(x_train)
        for dy in range(5):
            for dx in range(5):
                chosen = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
                images[chosen] = padded[chosen, :, dy : dy + 32, dx : dx + 32]
        if epoch % 2:
            images = images.flip(-1)
        order = torch.randperm(len(x_train))
        net.train()
        for i in range(per_epoch):
            index = order[i * batch : (i + 1) * batch]
            loss = loss_fn(net(images[index]) / 9, y_train[index]).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step % 5 == 0:  # weight averaging of every float in the state, statistics too
                keep = 0.95**5 * (step / total) ** 3
                for kept, value in zip(average.values(), net.state_dict().values()):
                    if value.dtype == torch.float32:
                        kept.lerp_(value, 1 - keep)
                copy_average()
            if args.eval_every and step % args.eval_every == 0:
                net.eval()
                with torch.no_grad():
                    guesses = torch.cat([net(x_test[i : i + 1000]).argmax(1) for i in range(0, len(x_test), 1000)])
                print(f"step {step}/{total}  test accuracy {(guesses == y_test).float().mean().item():.4f}", flush=True)
                net.train()
            if step % 10 == 0:
                print(f"step {step}/{total}  loss {loss.item() / batch:.3f}  {time.time() - start:.0f} s", flush=True)
            if step >= total:
                copy_average()  # the last steps since an average are dropped, as airbench does
                break
    net.eval()
    with torch.no_grad():

        def logits(x):
            return torch.cat([net(x[i : i + 1000]) for i in range(0, len(x), 1000)]) / 9

        def mirrored(x):
            return 0.5 * logits(x) + 0.5 * logits(x.flip(-1))

        plain = logits(x_test)
        padded_test = F.pad(x_test, (1,) * 4, mode="reflect")
        moved = [padded_test[:, :, :32, :32], padded_test[:, :, 2:, 2:]]
        views = 0.5 * mirrored(x_test) + 0.25 * mirrored(moved[0]) + 0.25 * mirrored(moved[1])
        accuracy = (plain.argmax(1) == y_test).float().mean().item()
        tta = (views.argmax(1) == y_test).float().mean().item()
    print(f"RESULT epochs={args.epochs} activation={args.activation} normalize={args.normalize} seed={args.seed} "
          f"steps={total} accuracy={accuracy:.4f} tta={tta:.4f} seconds={time.time() - start:.0f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

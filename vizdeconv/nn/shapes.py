"""Shape arithmetic for convolutions and transposed convolutions (one spatial dimension).

A transposed convolution is the adjoint of a forward convolution, so its legal output sizes are exactly
the sizes whose forward convolution gives the transposed convolution's input size back. Forward sizes
follow TensorFlow: SAME gives ceil(n / s); VALID gives ceil((n - d*(k-1)) / s).

Run `python -m vizdeconv.shapes --input 126 --kernel 4 --stride 2 --padding VALID` for the legal sizes.
"""

import math

PADDINGS = ("SAME", "VALID")


def _check(kernel: int, stride: int, padding: str, dilation: int) -> str:
    padding = str(padding).upper()
    if padding not in PADDINGS:
        raise ValueError(f"padding must be SAME or VALID, got {padding!r}")
    for name, value in (("kernel", kernel), ("stride", stride), ("dilation", dilation)):
        if int(value) < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    return padding


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """Size of a kernel once `dilation - 1` zeros are inserted between its taps."""
    return dilation * (kernel - 1) + 1


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: str = "SAME", dilation: int = 1) -> int:
    """Output length of a forward convolution (or pooling) along one dimension.

    Raises:
      ValueError: when VALID padding leaves no output (the dilated kernel is larger than the input),
        a case TensorFlow on CPU does not report.
    """
    padding = _check(kernel, stride, padding, dilation)
    if size < 1:
        raise ValueError(f"input size must be positive, got {size}")
    if padding == "SAME":
        return math.ceil(size / stride)
    span = effective_kernel(kernel, dilation)
    if size < span:
        raise ValueError(
            f"VALID convolution of a size-{size} input with a kernel of {kernel} at dilation {dilation} "
            f"is impossible: the dilated kernel spans {span} > {size}; use SAME padding, a smaller "
            f"dilation, or an input of at least {span}"
        )
    return math.ceil((size - span + 1) / stride)


def padding_before(size: int, kernel: int, stride: int = 1, padding: str = "SAME", dilation: int = 1) -> int:
    """Zeros TensorFlow pads before the input: for SAME the smaller half of the total, else none."""
    padding = _check(kernel, stride, padding, dilation)
    if padding == "VALID":
        return 0
    total = max((math.ceil(size / stride) - 1) * stride + effective_kernel(kernel, dilation) - size, 0)
    return total // 2


def transpose_output_sizes(size: int, kernel: int, stride: int = 1, padding: str = "SAME", dilation: int = 1) -> range:
    """All output lengths a transposed convolution may produce from an input of length `size`.

    These are the lengths m whose forward convolution (same kernel, stride, padding, dilation) has
    length `size`; there are exactly `stride` of them.
    """
    padding = _check(kernel, stride, padding, dilation)
    if size < 1:
        raise ValueError(f"input size must be positive, got {size}")
    low, high = (size - 1) * stride + 1, size * stride
    if padding == "VALID":
        extra = effective_kernel(kernel, dilation) - 1
        low, high = low + extra, high + extra
    return range(low, high + 1)


def check_transpose_output(
    size: int, output: int, kernel: int, stride: int = 1, padding: str = "SAME", dilation: int = 1
) -> None:
    """Raises a ValueError explaining why `output` is impossible, and what would work instead."""
    legal = transpose_output_sizes(size, kernel, stride, padding, dilation)
    if output in legal:
        return
    padding = padding.upper()
    sizes = ", ".join(str(m) for m in legal) if len(legal) <= 4 else f"{legal[0]}..{legal[-1]}"
    message = (
        f"conv2d_transpose cannot produce size {output} from size {size} with kernel {kernel}, "
        f"stride {stride}, {padding} padding, dilation {dilation}: "
        f"{padding} from {size} gives {sizes}"
    )
    try:
        needed = conv_output_size(output, kernel, stride, padding, dilation)
        message += f"; {padding} to {output} needs an input of {needed}"
    except ValueError:
        message += f"; {output} is smaller than the dilated kernel, so no input reaches it"
    raise ValueError(message)

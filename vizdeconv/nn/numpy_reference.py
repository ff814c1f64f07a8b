"""Plain NumPy reference implementations, written for clarity rather than speed.

Layouts follow TensorFlow: images NHWC; `conv2d` kernels `[kh, kw, in, out]`; `conv2d_transpose`
kernels `[kh, kw, out, in]` where `out` are the channels it produces (the forward conv's input).
Tests compare TensorFlow and the project's ops against these.
"""

import numpy as np

from vizdeconv.nn import shapes


def dilate_kernel(kernel: np.ndarray, dilation: int) -> np.ndarray:
    """Inserts dilation-1 zeros between the taps of a [kh, kw, a, b] kernel."""
    kh, kw = kernel.shape[:2]
    dilated = np.zeros(
        (shapes.effective_kernel(kh, dilation), shapes.effective_kernel(kw, dilation), *kernel.shape[2:]), kernel.dtype
    )
    dilated[::dilation, ::dilation] = kernel
    return dilated


def conv2d(x: np.ndarray, kernel: np.ndarray, stride: int = 1, padding: str = "SAME", dilation: int = 1) -> np.ndarray:
    """Cross-correlation as tf.nn.conv2d computes it: [N, H, W, in] * [kh, kw, in, out] -> [N, H', W', out]."""
    n, height, width, _ = x.shape
    kh, kw, _, out_channels = kernel.shape
    out_h = shapes.conv_output_size(height, kh, stride, padding, dilation)
    out_w = shapes.conv_output_size(width, kw, stride, padding, dilation)
    top = shapes.padding_before(height, kh, stride, padding, dilation)
    left = shapes.padding_before(width, kw, stride, padding, dilation)
    full = dilate_kernel(kernel, dilation)
    span_h, span_w = full.shape[:2]
    padded = np.zeros(
        (
            n,
            max(height + top, (out_h - 1) * stride + span_h),
            max(width + left, (out_w - 1) * stride + span_w),
            x.shape[3],
        ),
        x.dtype,
    )
    padded[:, top : top + height, left : left + width] = x
    out = np.zeros((n, out_h, out_w, out_channels), np.result_type(x, kernel))
    for i in range(out_h):
        for j in range(out_w):
            window = padded[:, i * stride : i * stride + span_h, j * stride : j * stride + span_w]
            out[:, i, j] = np.tensordot(window, full, axes=([1, 2, 3], [0, 1, 2]))
    return out


def conv2d_transpose(
    x: np.ndarray, kernel: np.ndarray, output_shape, stride: int = 1, padding: str = "SAME", dilation: int = 1
) -> np.ndarray:
    """The textbook transposed convolution.

    1. insert stride-1 zeros between the inputs; 2. pad by the dilated kernel's size minus one;
    3. convolve with the (dilated) kernel rotated by 180 degrees; 4. crop to `output_shape`, starting
    where the forward convolution's padding started.

    Args:
      x: [N, H, W, in]; kernel: [kh, kw, out, in]; output_shape: [N, H_out, W_out, out].
    """
    n, height, width, _ = x.shape
    kh, kw, out_channels, _ = kernel.shape
    out_h, out_w = int(output_shape[1]), int(output_shape[2])
    shapes.check_transpose_output(height, out_h, kh, stride, padding, dilation)
    shapes.check_transpose_output(width, out_w, kw, stride, padding, dilation)
    full = dilate_kernel(kernel, dilation)
    span_h, span_w = full.shape[:2]
    top = shapes.padding_before(out_h, kh, stride, padding, dilation)
    left = shapes.padding_before(out_w, kw, stride, padding, dilation)
    # Zero insertion, then a frame of span-1 zeros (wider on the right/bottom when the crop needs it).
    rows = max((height - 1) * stride + 1, top + out_h) + 2 * (span_h - 1)
    cols = max((width - 1) * stride + 1, left + out_w) + 2 * (span_w - 1)
    spread = np.zeros((n, rows, cols, x.shape[3]), x.dtype)
    spread[
        :,
        span_h - 1 : span_h - 1 + (height - 1) * stride + 1 : stride,
        span_w - 1 : span_w - 1 + (width - 1) * stride + 1 : stride,
    ] = x
    rotated = full[::-1, ::-1]  # [span_h, span_w, out, in]
    full_h, full_w = rows - span_h + 1, cols - span_w + 1
    result = np.zeros((n, full_h, full_w, out_channels), np.result_type(x, kernel))
    for i in range(full_h):
        for j in range(full_w):
            window = spread[:, i : i + span_h, j : j + span_w]
            result[:, i, j] = np.tensordot(window, rotated, axes=([1, 2, 3], [0, 1, 3]))
    return result[:, top : top + out_h, left : left + out_w]


def max_pool_with_argmax(
    x: np.ndarray, pool_size: int = 2, stride: int | None = None, padding: str = "SAME"
) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling and switches ((row * W + col) * C + channel), first maximum in row-major order wins."""
    stride = stride or pool_size
    n, height, width, channels = x.shape
    out_h = shapes.conv_output_size(height, pool_size, stride, padding)
    out_w = shapes.conv_output_size(width, pool_size, stride, padding)
    top = shapes.padding_before(height, pool_size, stride, padding, 1)
    left = shapes.padding_before(width, pool_size, stride, padding, 1)
    pooled = np.zeros((n, out_h, out_w, channels), x.dtype)
    switches = np.zeros((n, out_h, out_w, channels), np.int64)
    for b in range(n):
        for i in range(out_h):
            for j in range(out_w):
                for c in range(channels):
                    best, where = -np.inf, -1
                    for r in range(i * stride - top, i * stride - top + pool_size):
                        for s in range(j * stride - left, j * stride - left + pool_size):
                            if 0 <= r < height and 0 <= s < width and x[b, r, s, c] > best:
                                best, where = x[b, r, s, c], (r * width + s) * channels + c
                    pooled[b, i, j, c], switches[b, i, j, c] = best, where
    return pooled, switches


def unpool(values: np.ndarray, switches: np.ndarray, output_shape) -> np.ndarray:
    """Adds every pooled value at its switch position in a zero tensor of `output_shape`."""
    out = np.zeros(output_shape, values.dtype)
    for b in range(values.shape[0]):
        np.add.at(out[b].reshape(-1), switches[b].reshape(-1), values[b].reshape(-1))
    return out

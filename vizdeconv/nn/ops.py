"""Pure tensor functions: checked convolutions, argmax pooling and unpooling through switches.

All tensors are NHWC. Kernels are `[kh, kw, in, out]` as `tf.nn.conv2d` lays them out; the transposed
convolution uses the same kernel, so it maps `out` channels back to `in` channels.
"""

import functools

import tensorflow as tf

from vizdeconv.nn import shapes


def compiled(function, *static, **options):
    """tf.function(function with its first arguments `static` fixed, **options). Through a partial, never a
    closure or a lambda: TensorFlow counts traces per Python code object, and closures made by one piece of code
    share theirs, so several such functions (a layer each, a target each, a network each) would be warned of
    "excessive retracing" when each traced once. The partial holds `static` alive."""
    return tf.function(functools.partial(function, *static), **options)


def _spatial(x) -> tuple[int, int]:
    height, width = x.shape[1], x.shape[2]
    if height is None or width is None:
        raise ValueError("spatial dimensions must be known statically")
    return int(height), int(width)


def pair(value) -> tuple[int, int]:
    """(rows, cols) of a stride, dilation or window given as one int or a pair."""
    if isinstance(value, int):
        return value, value
    rows, cols = value
    return int(rows), int(cols)


def conv2d(x, kernel, stride=1, padding: str = "SAME", dilation=1):
    """Convolution that refuses impossible geometries instead of returning garbage.

    TensorFlow 2.21 on CPU returns an empty tensor (or, with oneDNN, zeros of the input's size) when a
    VALID dilated kernel is larger than the image; this raises a ValueError instead.

    Args:
      x: [N, H, W, C_in] float.
      kernel: [kh, kw, C_in, C_out], same dtype as `x`.
      stride, dilation: an int or a (rows, cols) pair.
    Returns:
      [N, H', W', C_out] with H' = shapes.conv_output_size(H, kh, stride, padding, dilation).
    """
    height, width = _spatial(x)
    stride, dilation = pair(stride), pair(dilation)
    kernel_h, kernel_w = int(kernel.shape[0]), int(kernel.shape[1])
    shapes.conv_output_size(height, kernel_h, stride[0], padding, dilation[0])
    shapes.conv_output_size(width, kernel_w, stride[1], padding, dilation[1])
    if dilation != (1, 1):
        # Its gradient needs a dilated Conv2DBackpropInput, which CPUs without oneDNN lack.
        kernel = dilate_kernel(kernel, dilation)
    return tf.nn.conv2d(x, kernel, strides=stride, padding=padding.upper())


def conv2d_transpose(x, kernel, output_shape, stride=1, padding: str = "SAME", dilation=1):
    """Transposed convolution (the adjoint of `conv2d`) with a validated `output_shape`.

    Args:
      x: [N, H, W, C_out] float.
      kernel: [kh, kw, C_in, C_out], the forward kernel.
      output_shape: [N, H_out, W_out, C_in]; H_out must be one of
        shapes.transpose_output_sizes(H, kh, stride, padding, dilation).
    Returns:
      [N, H_out, W_out, C_in].
    """
    height, width = _spatial(x)
    stride, dilation = pair(stride), pair(dilation)
    out_h, out_w = int(output_shape[1]), int(output_shape[2])
    shapes.check_transpose_output(height, out_h, int(kernel.shape[0]), stride[0], padding, dilation[0])
    shapes.check_transpose_output(width, out_w, int(kernel.shape[1]), stride[1], padding, dilation[1])
    if dilation != (1, 1):
        # Without oneDNN (CPUs lacking AVX-512) TensorFlow has no dilated Conv2DBackpropInput; a kernel
        # with the holes written in is the same operator and runs everywhere.
        kernel = dilate_kernel(kernel, dilation)
    return tf.nn.conv2d_transpose(x, kernel, output_shape, strides=stride, padding=padding.upper())


def dilate_kernel(kernel, dilation):
    """[kh, kw, in, out] -> [(kh-1)*d+1, (kw-1)*d+1, in, out] with d-1 zeros between the taps."""
    kernel_h, kernel_w = int(kernel.shape[0]), int(kernel.shape[1])
    dilation = pair(dilation)
    rows = [(kernel_h - 1) * dilation[0] + 1, (kernel_w - 1) * dilation[1] + 1]
    index = tf.stack(
        tf.meshgrid(tf.range(kernel_h) * dilation[0], tf.range(kernel_w) * dilation[1], indexing="ij"), axis=-1
    )
    return tf.scatter_nd(
        tf.reshape(index, [-1, 2]),
        tf.reshape(kernel, [kernel_h * kernel_w, *kernel.shape[2:]]),
        [*rows, *kernel.shape[2:]],
    )


def max_pool_with_argmax(x, pool_size=2, stride=None, padding: str = "SAME"):
    """Max pooling that also returns the switches (flat argmax positions, batch not included).

    Args:
      x: [N, H, W, C] float.
    Returns:
      pooled: [N, H', W', C]; switches: [N, H', W', C] int64 where each entry is
      (row * W + col) * C + channel of the maximum inside its own image, as TensorFlow records it.
    """
    pool_size, stride = pair(pool_size), pair(stride or pool_size)
    pooled, switches = tf.nn.max_pool_with_argmax(
        x, ksize=pool_size, strides=stride, padding=padding.upper(), include_batch_in_index=False
    )
    return pooled, switches


def unpool(values, switches, output_shape, pool_size=2, stride=None, padding: str = "SAME"):
    """Puts every pooled value back where its maximum came from, zeros elsewhere.

    Uses TensorFlow's native max-pool gradient kernel, which routes values through recorded switches;
    where pooling windows overlap and share a maximum, the values add up as a gradient would.

    Args:
      values: [N, H', W', C] float, shaped like the pooled output.
      switches: [N, H', W', C] int64 from `max_pool_with_argmax`.
      output_shape: [N, H, W, C], the shape of the tensor that was pooled.
    Returns:
      [N, H, W, C] with the dtype of `values`.
    """
    pool_size, stride = pair(pool_size), pair(stride or pool_size)
    return tf.raw_ops.MaxPoolGradWithArgmax(
        input=tf.zeros(output_shape, values.dtype),
        grad=values,
        argmax=switches,
        ksize=[1, *pool_size, 1],
        strides=[1, *stride, 1],
        padding=padding.upper(),
        include_batch_in_index=False,
    )


def unpool_scatter_nd(
    values, switches, output_shape, pool_size: int = 2, stride: int | None = None, padding: str = "SAME"
):
    """The same unpooling built from hand-made indices and `tf.scatter_nd`.

    Kept only as the slow reference the benchmarks compare against (the TF1 tutorial's method). The
    switches are absolute positions, so the pooling geometry arguments are not needed.
    """
    batch, height, width, channels = output_shape
    per_image = height * width * channels
    batch_index = tf.reshape(tf.range(batch, dtype=tf.int64), [-1, 1, 1, 1])
    flat = tf.reshape(switches + batch_index * per_image, [-1, 1])
    updates = tf.reshape(values, [-1])
    return tf.reshape(tf.scatter_nd(flat, updates, [batch * per_image]), output_shape)


def warp(images, matrices, fill_mode: str = "REFLECT"):
    """Images resampled bilinearly through one affine map each, at their own size.

    Args:
      images: [N, H, W, C] float32.
      matrices: [N, 6] (a0, a1, a2, b0, b1, b2): output pixel (x, y) reads input pixel
        (a0 x + a1 y + a2, b0 x + b1 y + b2), as ImageProjectiveTransform defines it.
      fill_mode: how pixels read from outside the image are filled ("REFLECT", "NEAREST", ...).
    Returns:
      [N, H, W, C] float32.
    """
    matrices = tf.convert_to_tensor(matrices, tf.float32)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=tf.concat([matrices, tf.zeros_like(matrices[:, :2])], 1),
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode=fill_mode,
    )

"""Receptive fields: which input pixels a unit of any layer can see, from the layer specs alone."""
import dataclasses

from vizdeconv.nn import shapes
from vizdeconv.nn.convnet import DeconvNet


@dataclasses.dataclass(frozen=True)
class Field:
    """Nominal input footprint of the units of one layer along one dimension.

    Unit u spans input positions start + u * jump .. start + u * jump + size - 1 before clipping to the
    image and before dropping padding and dilation holes (`box` gives the exact extent).
    """
    size: int
    jump: int
    start: int


def _operations(model: DeconvNet) -> list[tuple[str, int, int, str, int, int]]:
    """(output name, kernel, stride, padding, dilation, input length) of each conv and pool, in order."""
    result, length = [], model.image_size
    for spec in model.specs:
        result.append((spec.name, spec.kernel, spec.stride, spec.padding, spec.dilation, length))
        length = model.shapes[spec.name][0]
        if spec.pool:
            result.append((spec.pool_name, spec.pool, spec.effective_pool_stride, spec.pool_padding, 1,
                           length))
            length = model.shapes[spec.pool_name][0]
    return result


def fields(model: DeconvNet) -> dict[str, Field]:
    """The nominal Field of every named tensor (square layers: one Field serves both axes)."""
    field, result = Field(1, 1, 0), {"input": Field(1, 1, 0)}
    for name, kernel, stride, padding, dilation, length in _operations(model):
        pad = shapes.padding_before(length, kernel, stride, padding, dilation)
        span = shapes.effective_kernel(kernel, dilation)
        field = Field(field.size + (span - 1) * field.jump, field.jump * stride,
                      field.start - pad * field.jump)
        result[name] = field
    return result


def _reached(model: DeconvNet, layer: str, unit: int) -> list[int]:
    """Input positions (one axis) that unit `unit` of `layer` reads, padding and holes excluded."""
    operations = _operations(model)
    names = [operation[0] for operation in operations]
    if layer not in names:
        raise ValueError(f"unknown layer {layer!r}; the model has {', '.join(names)}")
    positions = {unit}
    for _, kernel, stride, padding, dilation, length in reversed(operations[:names.index(layer) + 1]):
        pad = shapes.padding_before(length, kernel, stride, padding, dilation)
        positions = {u * stride - pad + tap * dilation for u in positions for tap in range(kernel)}
        positions = {p for p in positions if 0 <= p < length}
    return sorted(positions)


def box(model: DeconvNet, layer: str, row: int, col: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), inclusive: the bounding box of the input pixels unit (row, col) of
    `layer` reads (exact: taps that fall into padding or between dilated taps do not count)."""
    rows, cols = _reached(model, layer, row), _reached(model, layer, col)
    return rows[0], cols[0], rows[-1], cols[-1]

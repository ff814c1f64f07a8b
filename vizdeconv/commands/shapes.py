"""`vizdeconv shapes --input 126 --kernel 4 --stride 2 --padding VALID [--output 255]`: the legal
`conv2d_transpose` output sizes from an input size, the forward size, and why a requested size is impossible.
"""

import dataclasses

from vizdeconv.commands import flags


@dataclasses.dataclass(kw_only=True)
class ShapesOptions:
    """One dimension of a convolution (the flags of `vizdeconv shapes`)."""

    input: int | None = flags.option(None, "input length (one dimension)", required=True)
    kernel: int | None = flags.option(None, "kernel length", required=True)
    stride: int = flags.option(1, "stride")
    padding: str = flags.option("SAME", "SAME or VALID (either case)", choices=("SAME", "VALID"), upper=True)
    dilation: int = flags.option(1, "dilation")
    output: int | None = flags.option(None, "check one requested transposed-conv output size")


def main(argv=None, program: str = "vizdeconv shapes") -> int:
    from vizdeconv.nn.shapes import check_transpose_output, conv_output_size, transpose_output_sizes

    parser = flags.parser(program, "Legal output sizes of a transposed convolution, and the forward size.")
    flags.add_options(parser, ShapesOptions)
    args = flags.options_from(parser.parse_args(argv), ShapesOptions)
    geometry = dict(kernel=args.kernel, stride=args.stride, padding=args.padding, dilation=args.dilation)
    legal = transpose_output_sizes(args.input, **geometry)
    print(f"conv2d_transpose from {args.input}: output sizes {', '.join(map(str, legal))}")
    try:
        print(f"conv2d forward from {args.input}: {conv_output_size(args.input, **geometry)}")
    except ValueError as error:
        print(f"conv2d forward from {args.input}: impossible ({error})")
    if args.output is not None:
        check_transpose_output(args.input, args.output, **geometry)
        print(f"output {args.output} is legal")
    return 0

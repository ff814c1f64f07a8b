"""`vizdeconv shapes --input 126 --kernel 4 --stride 2 --padding VALID [--output 255]`: the legal
`conv2d_transpose` output sizes from an input size, the forward size, and why a requested size is impossible.
"""

from vizdeconv.commands import flags


def main(argv=None, program: str = "vizdeconv shapes") -> int:
    from vizdeconv.nn.shapes import PADDINGS, check_transpose_output, conv_output_size, transpose_output_sizes

    parser = flags.parser(program, "Legal output sizes of a transposed convolution, and the forward size.")
    parser.add_argument("--input", type=int, required=True, help="input length (one dimension)")
    parser.add_argument("--kernel", type=int, required=True)
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--padding", default="SAME", type=str.upper, choices=PADDINGS)
    parser.add_argument("--dilation", type=int, default=1)
    parser.add_argument("--output", type=int, help="check one requested transposed-conv output size")
    args = parser.parse_args(argv)
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

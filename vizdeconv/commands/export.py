"""`vizdeconv export --run logs/default --out model.keras`: a run's network as a `.keras` file.

The file holds plain Keras layers (Conv2D with ReLU, MaxPooling2D, GlobalAveragePooling2D), so
`keras.models.load_model` opens it without vizdeconv installed; its inputs are the run's central crops
(24x24 for the reference net) standardized per image, or their pixels 0..255 for a run normalized by its
data set (a first Normalization layer), its outputs the run's logits. The run's projection defaults
(`reconstruction.mode` and `.rectify`) ride along in an archive entry Keras does not read, so the explorer,
the analyses and the TensorBoard tab open the file with the run's rule.
"""

import dataclasses
import os

from vizdeconv.commands import flags


@dataclasses.dataclass(kw_only=True)
class ExportOptions:
    """The run to export and the file to write (the flags of `vizdeconv export`)."""

    run: str | None = flags.option(None, "a run folder written by vizdeconv train", required=True)
    out: str | None = flags.option(None, "the .keras file to write", required=True)


def main(argv=None, program: str = "vizdeconv export") -> int:
    parser = flags.parser(program, __doc__.split("\n")[0])
    flags.add_options(parser, ExportOptions)
    args = flags.options_from(parser.parse_args(argv), ExportOptions)
    if not args.out.endswith(".keras"):
        raise ValueError(f"--out must end in .keras, got {args.out}")
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"folder {folder} does not exist; create it or pick another --out")
    from vizdeconv.runs.subject import export_run

    model = export_run(args.run, args.out)
    print(
        f"wrote {args.out} ({model.count_params()} parameters, input {model.input_shape[1:]}, "
        f"output {model.output_shape[1:]})"
    )
    return 0

"""Opening trained networks: a run folder's reference net (as itself or as Keras), a `.keras` file."""
import os


def load_run(run: str, log=print):
    """(config, DeconvNet) of a run folder, with the weights of its newest intact checkpoint (damaged
    ones are skipped with a warning through `log`).

    Raises:
      FileNotFoundError / ValueError: not a run folder, written by a newer vizdeconv, or no checkpoint.
    """
    import tensorflow as tf

    from vizdeconv.nn.convnet import build_model
    from vizdeconv.training import checkpoints, rundir

    if not os.path.isdir(run):
        raise FileNotFoundError(f"run folder {run} does not exist")
    config = rundir.load_config(run)
    try:
        model = build_model(config)
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{run}/config.json does not describe a vizdeconv model ({error})") from None
    restored = checkpoints.restore_newest(tf.train.Checkpoint(model=model),
                                          os.path.join(run, "checkpoints"), log, partial=True)
    if restored is None:
        raise FileNotFoundError(f"{run} has no checkpoint yet; train it first")
    return config, model


def load_model(run: str):
    """The trained reference network of a run folder as a Keras model (logits [N, 10] from inputs
    [N, 24, 24, 3] that are centrally cropped and standardized per image, as the trainer evaluates)."""
    from vizdeconv.nn.convnet import to_keras

    return to_keras(load_run(run)[1])


def load_keras(path: str):
    """A Keras model file, with a one-line error for a missing or unreadable file."""
    import keras

    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file {path} does not exist")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many kinds for a damaged archive
        message = " ".join(str(error).split())[:200] or type(error).__name__
        raise ValueError(f"cannot load Keras model {path}: {message}") from None

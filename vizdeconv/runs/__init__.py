"""Run folders and models: the folder layout and its config (`rundir`), checkpoints that survive damage
(`checkpoints`), one writer at a time (`lock`), and `subject.open_subject`, the one way to open a run, a `.keras`
file, a folder of snapshots or an `applications:` model."""

APPLICATIONS = "applications:"  # a model named by its keras.applications family, not a file (TensorFlow-free here:
# the TensorBoard plugin reads it when TensorBoard loads it)

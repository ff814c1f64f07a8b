"""Training the reference network: losses, optimizers, the train and eval steps, and the loop (`Trainer`), which
reads its data from `data`, its machine settings from `hardware` and writes a run folder through `runs`."""

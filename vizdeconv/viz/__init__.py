"""What a person sees: display scaling, grids and PNG files (`pictures`), the trainer's TensorBoard summaries
(`summaries`), the Keras callback, the notebook helpers (`inspection`) and the TensorBoard plugin (`plugin`)."""

"""Display scaling, grids, PNG writing, TensorBoard summaries, the Keras callback, notebook helpers."""

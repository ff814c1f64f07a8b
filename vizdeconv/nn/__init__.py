"""The network: its description (`graph`: a Graph of ops), the op registry (`registry`, with the Keras layers
each kind claims in `keras_layers`), the Keras adapter, tensor ops, shape arithmetic, the one preprocessing of
pixels into inputs (`preprocess`), and the reference models (`convnet`, `alexnet`)."""

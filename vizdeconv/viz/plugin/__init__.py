"""The Deconvnet tab of TensorBoard: summaries that mark vizdeconv data (`metadata`), run folders read
through validated paths (`store`), on-demand projections (`projector`) and the plugin's routes (`plugin`)."""

"""The Deconvnet tab of TensorBoard: its summary protocol, the probe images the trainer, the explorer, the analyses
and the callback write (`probes`), run folders read through validated paths (`store`), uploads (`uploads`),
on-demand projections (`projector`) and the plugin's routes (`plugin`)."""

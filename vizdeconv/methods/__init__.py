"""Methods on a network, each a class built from a model and its settings and called on inputs: the deconvnet's
projections (`deconvnet.Deconvnet.project`, over the unpool + transposed-convolution chain of `reconstruct`),
class attribution (`attribution.Attribution.explain`: Grad-CAM, Grad-CAM++, Score-CAM, Guided Grad-CAM,
saliency, integrated gradients, each with SmoothGrad) and its faithfulness metrics (`metrics`), feature
visualization (`feature_vis.FeatureVisualization.optimize`), receptive fields, and the paper's occlusion,
invariance and sanity analyses with their similarity measures."""

"""A Graph's names: a nested backbone's layers are known by their own name (an alias) and by `outer/inner`, and
every name `resolve` takes for a feature layer is one (the plugin's projector asks `is_feature_layer`)."""

import keras

from vizdeconv.methods.deconvnet import as_graph


def nested():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inputs)
    backbone = keras.Model(inputs, keras.layers.MaxPooling2D(name="p1")(x), name="backbone")
    outer = keras.Input((8, 8, 3))
    y = keras.layers.GlobalAveragePooling2D(name="gap")(backbone(outer))
    return keras.Model(outer, keras.layers.Dense(2, name="head")(y))


def test_a_nested_layer_resolves_by_alias_and_full_name_and_both_are_feature_layers():
    graph = as_graph(nested())
    assert graph.resolve("c1") == graph.resolve("backbone/c1") == "backbone/c1"
    assert "c1" in graph.feature_layers and "backbone/c1" not in graph.feature_layers  # listed once, by alias
    for name in ("c1", "backbone/c1", "p1", "backbone/p1"):
        assert graph.is_feature_layer(name), name
    for name in ("head", "gap", "nope", "backbone/c1/linear"):
        assert not graph.is_feature_layer(name), name

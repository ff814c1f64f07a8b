"""The methods: the projection engine, receptive fields."""

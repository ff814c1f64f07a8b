"""Networks and tensor math: ops, shape arithmetic, the description of a network's operations, models."""

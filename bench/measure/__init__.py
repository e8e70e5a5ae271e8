"""Measuring, inside worker processes: the model, the data, devices and strategies, and each suite's
timed protocol. The only subpackage that imports a framework."""

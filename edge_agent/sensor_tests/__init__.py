"""Sensor tests: config models, kinds, runner, scheduler."""

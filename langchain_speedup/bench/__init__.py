"""Experiment harness: question streams, the demo and its report."""

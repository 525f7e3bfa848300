"""Checks on a run or a version: each a function giving pass/fail, a figure and a one-line reason."""

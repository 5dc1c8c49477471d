"""taskc: compile a domain expert's rationales into training data, a classifier and feedback."""

__version__ = "0.1.0"

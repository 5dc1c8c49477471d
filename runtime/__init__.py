"""The taskc runtime: executes a compiled task (generation plan, labeling, training, evaluation)."""

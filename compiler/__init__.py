"""The taskc compiler: task file → diagnostics, IR and deterministic compiled outputs."""

"""The taskc language itself: the expression grammar (Lark), the task-file JSON Schema and the reference."""

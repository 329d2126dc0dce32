"""Shared machinery of operations: the operation type, steps and their transaction, the
context, the lock, the audit log and the one audited run, errors, validation, and fresh
readings of hosts. It imports no host command and no procedure."""

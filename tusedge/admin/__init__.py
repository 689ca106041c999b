"""Operator tools that run beside the server: ``tusedge doctor`` (host settings) and ``tusedge uploads``
(the state database)."""

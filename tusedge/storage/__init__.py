"""Where upload bytes live. The store never reads a header; it translates its own failures to TusErrors."""

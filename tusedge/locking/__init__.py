"""One writer per upload at a time, across requests, worker processes and (with a shared locker) nodes."""

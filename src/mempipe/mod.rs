//! MemPipe: a broadcast in-memory pipe built on the queue (issue 5).

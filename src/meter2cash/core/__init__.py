"""Pure building blocks: money, time, quality flags, errors. No I/O."""

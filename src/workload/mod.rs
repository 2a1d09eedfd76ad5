//! IO in sacrificial child processes, each op with a deadline.

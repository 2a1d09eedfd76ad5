//! The on-disk record of every kernel object a run creates, and cleanup of what a killed run left.

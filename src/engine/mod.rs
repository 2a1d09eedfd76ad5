//! Plan → setup → timeline → verdict → teardown.

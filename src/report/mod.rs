//! Human summary, JSON journal and JUnit XML, built from events only.

//! Hang detection from /proc and the kernel log from /dev/kmsg.

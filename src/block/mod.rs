//! Loop devices, image files, mkfs.xfs and mounts.

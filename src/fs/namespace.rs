//! Namespace operations (rename, mkdir, rmdir, symlink, metadata updates).

//! seccomp compilation and loading (being written).

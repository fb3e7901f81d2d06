//! Layer diff (being written).

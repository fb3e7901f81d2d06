//! Layer unpack (being written).

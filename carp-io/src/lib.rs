//! Linux I/O for CARP (work in progress).

//! The CARP election state machine (work in progress).
#![forbid(unsafe_code)]

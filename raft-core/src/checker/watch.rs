//! Checking watch streams (filled in with the watch work).

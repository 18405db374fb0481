//! The native host for raftkv (tokio WebSocket nodes with a disk journal): not built yet, see issue 5.
